package stats

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Request counts each label set on its own, whether its handles were
// looked up before or not, and gRPC status -1 is "no gRPC status".
func TestMetrics_Request(t *testing.T) {
	m := New(nil)
	for range 3 {
		m.Request("web", "all", "be", 200, 0, time.Millisecond)
	}
	m.Request("web", "all", "be", 200, 14, time.Millisecond)
	m.Request("web", "all", "be", 404, -1, time.Millisecond)
	m.Request("web", "other", "be", 200, 0, time.Millisecond)
	for _, c := range []struct {
		labels []string
		want   float64
	}{
		{[]string{"web", "all", "be", "200", "0"}, 3},
		{[]string{"web", "all", "be", "200", "14"}, 1},
		{[]string{"web", "all", "be", "404", ""}, 1},
		{[]string{"web", "other", "be", "200", "0"}, 1},
	} {
		if got := testutil.ToFloat64(m.requests.WithLabelValues(c.labels...)); got != c.want {
			t.Errorf("requests %v = %v, want %v", c.labels, got, c.want)
		}
	}
	if n := testutil.CollectAndCount(m.duration); n != 2 {
		t.Errorf("%d duration series, want 2 (all, other)", n)
	}
}
