// Package safehessian decodes hessian2 from the network without trusting
// it: the stream is walked and bounded before the decoder (which allocates
// what lengths declare, and panics on some bad input) sees it. Dubbo2
// frames and Triple's wrappers both carry hessian2.
package safehessian

import (
	"encoding/binary"
	"errors"
	"fmt"

	hessian "github.com/apache/dubbo-go-hessian2"
)

// ErrMalformed marks hessian2 bytes that cannot be decoded safely.
var ErrMalformed = errors.New("malformed hessian2")

// Check walks a hessian2 stream without building values and fails
// on what the decoder would trust blindly: it allocates a list or a string
// of the length the stream declares before reading it, so four bytes can
// ask for gigabytes. Here every declared count must fit in what is left of
// the frame, nesting is bounded, and unknown tags are refused.
func Check(b []byte) error {
	c := hessianChecker{b: b}
	for c.pos < len(c.b) {
		if err := c.value(0); err != nil {
			return fmt.Errorf("%w at byte %d: %v", ErrMalformed, c.pos, err)
		}
	}
	return nil
}

// maxHessianDepth bounds nesting (the decoder recurses per level).
const maxHessianDepth = 256

var errTruncated = errors.New("truncated")

type hessianChecker struct {
	b       []byte
	pos     int
	classes []int // field counts of the class definitions seen
}

func (c *hessianChecker) left() int { return len(c.b) - c.pos }

func (c *hessianChecker) skip(n int) error {
	if n < 0 || n > c.left() {
		return errTruncated
	}
	c.pos += n
	return nil
}

func (c *hessianChecker) byte() (byte, error) {
	if c.pos >= len(c.b) {
		return 0, errTruncated
	}
	t := c.b[c.pos]
	c.pos++
	return t, nil
}

func (c *hessianChecker) peek() (byte, error) {
	if c.pos >= len(c.b) {
		return 0, errTruncated
	}
	return c.b[c.pos], nil
}

// count reads an int value used as a length, and checks that many items
// of at least one byte each can follow.
func (c *hessianChecker) count() (int, error) {
	n, err := c.int()
	if err != nil {
		return 0, err
	}
	if n < 0 || n > int64(c.left()) {
		return 0, fmt.Errorf("a count of %d with %d bytes left", n, c.left())
	}
	return int(n), nil
}

// int reads a hessian int (compact or 'I').
func (c *hessianChecker) int() (int64, error) {
	t, err := c.byte()
	if err != nil {
		return 0, err
	}
	switch {
	case t >= 0x80 && t <= 0xbf:
		return int64(t) - 0x90, nil
	case t >= 0xc0 && t <= 0xcf:
		b, err := c.byte()
		return (int64(t)-0xc8)<<8 | int64(b), err
	case t >= 0xd0 && t <= 0xd7:
		if c.left() < 2 {
			return 0, errTruncated
		}
		v := (int64(t)-0xd4)<<16 | int64(c.b[c.pos])<<8 | int64(c.b[c.pos+1])
		c.pos += 2
		return v, nil
	case t == 'I':
		if c.left() < 4 {
			return 0, errTruncated
		}
		v := int64(int32(binary.BigEndian.Uint32(c.b[c.pos:])))
		c.pos += 4
		return v, nil
	}
	return 0, fmt.Errorf("want an int, got tag 0x%02x", t)
}

// chars skips n characters as the decoder counts them: UTF-8 of one to
// three bytes, a surrogate pair (six bytes, Java's way) counting two.
func (c *hessianChecker) chars(n int) error {
	if n > c.left() {
		return fmt.Errorf("a string of %d characters with %d bytes left", n, c.left())
	}
	for read := 0; read < n; {
		ch, err := c.byte()
		if err != nil {
			return err
		}
		switch {
		case ch < 0x80:
			read++
		case ch&0xe0 == 0xc0:
			read++
			if err := c.skip(1); err != nil {
				return err
			}
		case ch&0xf0 == 0xe0:
			if c.left() < 2 {
				return errTruncated
			}
			r := (uint32(ch)&0x0f)<<12 | (uint32(c.b[c.pos])&0x3f)<<6 | uint32(c.b[c.pos+1])&0x3f
			c.pos += 2
			read++
			if r >= 0xd800 && r <= 0xdbff {
				read++
				if err := c.skip(3); err != nil {
					return err
				}
			}
		default:
			return fmt.Errorf("bad UTF-8 byte 0x%02x in a string", ch)
		}
	}
	return nil
}

// typeName skips a list or map type: a string, or an int naming an
// earlier type.
func (c *hessianChecker) typeName() error {
	t, err := c.peek()
	if err != nil {
		return err
	}
	if isStringTag(t) {
		return c.value(maxHessianDepth - 1)
	}
	_, err = c.int()
	return err
}

func isStringTag(t byte) bool {
	return t <= 0x1f || (t >= 0x30 && t <= 0x33) || t == 'S' || t == 'R'
}

func (c *hessianChecker) value(depth int) error {
	if depth >= maxHessianDepth {
		return errors.New("nested too deep")
	}
	t, err := c.byte()
	if err != nil {
		return err
	}
	switch {
	case t == 'N' || t == 'T' || t == 'F':
		return nil
	// ints
	case t >= 0x80 && t <= 0xbf:
		return nil
	case t >= 0xc0 && t <= 0xcf:
		return c.skip(1)
	case t >= 0xd0 && t <= 0xd7:
		return c.skip(2)
	case t == 'I':
		return c.skip(4)
	// longs
	case t >= 0xd8 && t <= 0xef:
		return nil
	case t >= 0xf0:
		return c.skip(1)
	case t >= 0x38 && t <= 0x3f:
		return c.skip(2)
	case t == 0x59:
		return c.skip(4)
	case t == 'L':
		return c.skip(8)
	// doubles
	case t == 0x5b || t == 0x5c:
		return nil
	case t == 0x5d:
		return c.skip(1)
	case t == 0x5e:
		return c.skip(2)
	case t == 0x5f:
		return c.skip(4)
	case t == 'D':
		return c.skip(8)
	// dates
	case t == 0x4a:
		return c.skip(8)
	case t == 0x4b:
		return c.skip(4)
	// strings: chunks of 'R' then a final one
	case t <= 0x1f:
		return c.chars(int(t))
	case t >= 0x30 && t <= 0x33:
		b, err := c.byte()
		if err != nil {
			return err
		}
		return c.chars(int(t-0x30)<<8 | int(b))
	case t == 'S' || t == 'R':
		if c.left() < 2 {
			return errTruncated
		}
		n := int(binary.BigEndian.Uint16(c.b[c.pos:]))
		c.pos += 2
		if err := c.chars(n); err != nil {
			return err
		}
		if t == 'R' {
			return c.value(depth + 1) // the next chunk
		}
		return nil
	// binary
	case t >= 0x20 && t <= 0x2f:
		return c.skip(int(t - 0x20))
	case t >= 0x34 && t <= 0x37:
		b, err := c.byte()
		if err != nil {
			return err
		}
		return c.skip(int(t-0x34)<<8 | int(b))
	case t == 'B' || t == 'A':
		if c.left() < 2 {
			return errTruncated
		}
		n := int(binary.BigEndian.Uint16(c.b[c.pos:]))
		c.pos += 2
		if err := c.skip(n); err != nil {
			return err
		}
		if t == 'A' {
			return c.value(depth + 1)
		}
		return nil
	// lists
	case t == 0x55: // typed, variable length
		if err := c.typeName(); err != nil {
			return err
		}
		return c.until(depth, 1)
	case t == 'V': // typed, fixed length
		if err := c.typeName(); err != nil {
			return err
		}
		n, err := c.count()
		if err != nil {
			return err
		}
		return c.values(depth, n)
	case t == 0x57: // untyped, variable length
		return c.until(depth, 1)
	case t == 0x58: // untyped, fixed length
		n, err := c.count()
		if err != nil {
			return err
		}
		return c.values(depth, n)
	case t >= 0x70 && t <= 0x77:
		if err := c.typeName(); err != nil {
			return err
		}
		return c.values(depth, int(t-0x70))
	case t >= 0x78 && t <= 0x7f:
		return c.values(depth, int(t-0x78))
	// maps
	case t == 'M':
		if err := c.typeName(); err != nil {
			return err
		}
		return c.until(depth, 2)
	case t == 'H':
		return c.until(depth, 2)
	// objects
	case t == 'C':
		if err := c.value(depth + 1); err != nil { // the class name
			return err
		}
		n, err := c.count()
		if err != nil {
			return err
		}
		if err := c.values(depth, n); err != nil { // field names
			return err
		}
		c.classes = append(c.classes, n)
		return c.value(depth + 1) // the decoder reads the value after a definition as the same one
	case t == 'O':
		ref, err := c.int()
		if err != nil {
			return err
		}
		return c.object(depth, ref)
	case t >= 0x60 && t <= 0x6f:
		return c.object(depth, int64(t-0x60))
	// references
	case t == 0x51:
		_, err := c.int()
		return err
	}
	return fmt.Errorf("unknown tag 0x%02x", t)
}

func (c *hessianChecker) object(depth int, ref int64) error {
	if ref < 0 || ref >= int64(len(c.classes)) {
		return fmt.Errorf("an object of undefined class %d", ref)
	}
	return c.values(depth, c.classes[ref])
}

func (c *hessianChecker) values(depth, n int) error {
	for range n {
		if err := c.value(depth + 1); err != nil {
			return err
		}
	}
	return nil
}

// until skips groups of per values up to the 'Z' that ends a list or map.
func (c *hessianChecker) until(depth, per int) error {
	for {
		t, err := c.peek()
		if err != nil {
			return err
		}
		if t == 'Z' {
			c.pos++
			return nil
		}
		if err := c.values(depth, per); err != nil {
			return err
		}
	}
}

// Guard runs a decode, turning a panic of the hessian decoder (it has
// some on bad input that Check lets through) into ErrMalformed.
func Guard(decode func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: decoder panic: %v", ErrMalformed, p)
		}
	}()
	return decode()
}

// Decode checks b and decodes the one value it holds.
func Decode(b []byte) (any, error) {
	if err := Check(b); err != nil {
		return nil, err
	}
	var v any
	err := Guard(func() error {
		var err error
		v, err = hessian.NewDecoder(b).Decode()
		return err
	})
	if err != nil && !errors.Is(err, ErrMalformed) {
		err = fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return v, err
}
