package router

import (
	"errors"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/meshgate/meshgate/governance"
)

// LocalRateLimitType is the type URL of Envoy's local rate limit config.
const LocalRateLimitType = "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"

// LocalRateLimit is a compiled local_ratelimit config: its bucket and the
// status it answers with (Envoy's default 429).
type LocalRateLimit struct {
	*governance.RateLimit
	Status int
}

// CompileLocalRateLimit builds a limiter from Envoy's LocalRateLimit, or
// nil when it has no token bucket (Envoy then does not limit).
func CompileLocalRateLimit(a *anypb.Any) (*LocalRateLimit, error) {
	var c ratelimitv3.LocalRateLimit
	if err := a.UnmarshalTo(&c); err != nil {
		return nil, err
	}
	tb := c.GetTokenBucket()
	if tb == nil {
		return nil, nil
	}
	if len(c.GetDescriptors()) > 0 {
		return nil, errors.New("local_ratelimit descriptors are not supported")
	}
	fill := uint64(1)
	if v := tb.GetTokensPerFill(); v != nil {
		fill = uint64(v.GetValue())
	}
	out := &LocalRateLimit{
		RateLimit: &governance.RateLimit{
			Bucket:   governance.NewTokenBucket(uint64(tb.GetMaxTokens()), fill, tb.GetFillInterval().AsDuration()),
			Enabled:  fraction(c.GetFilterEnabled()),
			Enforced: fraction(c.GetFilterEnforced()),
		},
		Status: 429,
	}
	if s := c.GetStatus(); s != nil && s.GetCode() != 0 {
		out.Status = int(s.GetCode())
	}
	return out, nil
}

// fraction reads a RuntimeFractionalPercent's default; unset is 0, as
// Envoy's local rate limit defaults to enabling and enforcing nothing.
func fraction(p *corev3.RuntimeFractionalPercent) float64 {
	d := p.GetDefaultValue()
	if d == nil {
		return 0
	}
	den := map[typev3.FractionalPercent_DenominatorType]float64{
		typev3.FractionalPercent_HUNDRED:      100,
		typev3.FractionalPercent_TEN_THOUSAND: 10_000,
		typev3.FractionalPercent_MILLION:      1_000_000,
	}[d.GetDenominator()]
	return min(1, float64(d.GetNumerator())/den)
}
