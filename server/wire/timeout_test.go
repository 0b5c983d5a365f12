package wire

import (
	"testing"
	"time"
)

func TestParseGRPCTimeout(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"1S", time.Second, false},
		{"250m", 250 * time.Millisecond, false},
		{"10u", 10 * time.Microsecond, false},
		{"7n", 7, false},
		{"2M", 2 * time.Minute, false},
		{"1H", time.Hour, false},
		{"99999999S", 99999999 * time.Second, false},
		{"100000000S", 0, true}, // nine digits
		{"", 0, true},
		{"S", 0, true},
		{"5", 0, true},
		{"5s", 0, true}, // units are case sensitive
		{"-1S", 0, true},
		{"1.5S", 0, true},
	}
	for _, tc := range tests {
		got, err := ParseGRPCTimeout(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("ParseGRPCTimeout(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestFormatGRPCTimeout(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{1500 * time.Millisecond, "1500000u"},
		{99 * time.Millisecond, "99000000n"},
		{time.Hour, "3600000m"},
		{0, "1n"},
		{200 * 24 * time.Hour, "17280000S"},
		{43800 * time.Hour, "2628000M"},
	}
	for _, tc := range tests {
		if got := FormatGRPCTimeout(tc.in); got != tc.want {
			t.Errorf("FormatGRPCTimeout(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzGRPCTimeout: parsing never panics, and what is formatted parses back
// to at least the time it stood for, never less.
func FuzzGRPCTimeout(f *testing.F) {
	for _, s := range []string{"1S", "99999999H", "0n", "12m", "x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseGRPCTimeout(s)
		if err != nil {
			return
		}
		back, err := ParseGRPCTimeout(FormatGRPCTimeout(d))
		if err != nil {
			t.Fatalf("format(%v) does not parse: %v", d, err)
		}
		if back < d && d > 0 {
			t.Fatalf("format(%v) parses back to %v, less time than given", d, back)
		}
	})
}

func TestCallTimeout(t *testing.T) {
	tests := []struct {
		name   string
		route  time.Duration
		header string
		max    time.Duration
		want   time.Duration
		err    bool
	}{
		{"no header: the route's", 3 * time.Second, "", 0, 3 * time.Second, false},
		{"no header, no route timeout: none", 0, "", 0, 0, false},
		{"the caller's, sooner", 3 * time.Second, "500m", 0, 500 * time.Millisecond, false},
		{"the route's, sooner", time.Second, "5S", 0, time.Second, false},
		{"the caller's without a route timeout", 0, "5S", 0, 5 * time.Second, false},
		{"the caller's, capped", 0, "5S", 2 * time.Second, 2 * time.Second, false},
		{"malformed", time.Second, "5s", 0, 0, true},
	}
	for _, tt := range tests {
		got, err := CallTimeout(tt.route, tt.header, tt.max)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("%s: CallTimeout = %v, %v; want %v, error %v", tt.name, got, err, tt.want, tt.err)
		}
	}
}
