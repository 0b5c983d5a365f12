package wire

import (
	"fmt"
	"strconv"
	"time"
)

// ParseGRPCTimeout reads a grpc-timeout header: at most 8 digits and a unit
// (H, M, S, m, u, n), per the gRPC over HTTP/2 spec.
func ParseGRPCTimeout(v string) (time.Duration, error) {
	if len(v) < 2 || len(v) > 9 {
		return 0, fmt.Errorf("grpc-timeout %q: want 1 to 8 digits and a unit", v)
	}
	n, err := strconv.ParseInt(v[:len(v)-1], 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("grpc-timeout %q: bad number", v)
	}
	var unit time.Duration
	switch v[len(v)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, fmt.Errorf("grpc-timeout %q: unknown unit", v)
	}
	const maxDigits = 99999999
	if n > maxDigits {
		return 0, fmt.Errorf("grpc-timeout %q: more than 8 digits", v)
	}
	if unit >= time.Minute && n > int64((1<<63-1)/unit) {
		return 1<<63 - 1, nil
	}
	return time.Duration(n) * unit, nil
}

// FormatGRPCTimeout writes d as a grpc-timeout value with the finest unit
// that fits in 8 digits.
func FormatGRPCTimeout(d time.Duration) string {
	if d <= 0 {
		return "1n"
	}
	const maxDigits = 99999999
	for _, u := range []struct {
		d time.Duration
		s string
	}{{time.Nanosecond, "n"}, {time.Microsecond, "u"}, {time.Millisecond, "m"}, {time.Second, "S"}, {time.Minute, "M"}} {
		if v := d / u.d; v <= maxDigits {
			// Round up so the upstream never gets more time than is left.
			if d%u.d != 0 {
				v++
			}
			var b [24]byte // one allocation: the string
			return string(append(strconv.AppendInt(b[:0], int64(v), 10), u.s...))
		}
	}
	return strconv.FormatInt(int64(min(d/time.Hour+1, maxDigits)), 10) + "H"
}

// CallTimeout is a call's timeout: the route's (0: none), or a gRPC
// caller's grpc-timeout header (v, "" for none) when sooner, capped at max
// (the route's grpc_timeout_header_max; 0: no cap).
func CallTimeout(route time.Duration, v string, max time.Duration) (time.Duration, error) {
	if v == "" {
		return route, nil
	}
	d, err := ParseGRPCTimeout(v)
	if err != nil {
		return 0, err
	}
	if max > 0 && d > max {
		d = max
	}
	if route == 0 || d < route {
		return d, nil
	}
	return route, nil
}
