package dubbo

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"time"

	hessian "github.com/apache/dubbo-go-hessian2"
)

// Invocation is a request a Dubbo2 consumer sent: what it calls, with
// which arguments.
type Invocation struct {
	Service Service
	// TypesDesc is the JVM descriptor of the parameter types
	// ("Ljava/lang/String;J"); Types the same as Java names.
	TypesDesc   string
	Types       []string
	Args        []any
	Attachments map[string]string
}

// Request decodes a request frame (checked first, as answers are).
func (f *Frame) Request() (*Invocation, error) {
	if f.Header.Type&hessian.PackageRequest == 0 || f.Header.Type&hessian.PackageHeartbeat != 0 {
		return nil, fmt.Errorf("%w: not a call", ErrFrame)
	}
	if f.Header.SerialID != Hessian2SerialID {
		return nil, fmt.Errorf("%w: serialization %d is not hessian2", ErrFrame, f.Header.SerialID)
	}
	if err := checkHessian(f.raw[HeaderLen:]); err != nil {
		return nil, err
	}
	codec := hessian.NewHessianCodec(bufio.NewReaderSize(bytes.NewReader(f.raw), len(f.raw)))
	var h hessian.DubboHeader
	if err := codec.ReadHeader(&h); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFrame, err)
	}
	body := make([]any, 7)
	if err := decodeSafely(func() error { return codec.ReadBody(body) }); err != nil {
		return nil, fmt.Errorf("%w: request body: %v", ErrFrame, err)
	}
	inv := &Invocation{}
	inv.Service.Interface, _ = body[1].(string)
	inv.Service.Version, _ = body[2].(string)
	inv.Service.Method, _ = body[3].(string)
	inv.TypesDesc, _ = body[4].(string)
	inv.Args, _ = body[5].([]any)
	inv.Attachments, _ = body[6].(map[string]string)
	if inv.Attachments == nil {
		inv.Attachments = map[string]string{}
	}
	inv.Service.Group = inv.Attachments["group"]
	if i := inv.Attachments["interface"]; i != "" {
		inv.Service.Interface = i
	}
	if inv.Service.Interface == "" || inv.Service.Method == "" {
		return nil, fmt.Errorf("%w: the call names no service or method", ErrFrame)
	}
	types, err := ParseTypeDesc(inv.TypesDesc)
	if err != nil {
		return nil, err
	}
	inv.Types = types
	return inv, nil
}

// ParseTypeDesc turns a JVM parameter descriptor ("Ljava/lang/String;[IJ")
// into Java type names ("java.lang.String", "int[]", "long").
func ParseTypeDesc(desc string) ([]string, error) {
	var out []string
	for i := 0; i < len(desc); {
		dims := 0
		for i < len(desc) && desc[i] == '[' {
			dims++
			i++
		}
		if i >= len(desc) {
			return nil, fmt.Errorf("%w: type descriptor %q ends in an array", ErrFrame, desc)
		}
		var name string
		switch desc[i] {
		case 'Z':
			name = "boolean"
		case 'B':
			name = "byte"
		case 'C':
			name = "char"
		case 'S':
			name = "short"
		case 'I':
			name = "int"
		case 'J':
			name = "long"
		case 'F':
			name = "float"
		case 'D':
			name = "double"
		case 'V':
			name = "void"
		case 'L':
			end := strings.IndexByte(desc[i:], ';')
			if end < 0 {
				return nil, fmt.Errorf("%w: type descriptor %q has an unterminated class", ErrFrame, desc)
			}
			name = strings.ReplaceAll(desc[i+1:i+end], "/", ".")
			i += end
		default:
			return nil, fmt.Errorf("%w: type descriptor %q: unknown %q", ErrFrame, desc, desc[i])
		}
		i++
		out = append(out, name+strings.Repeat("[]", dims))
	}
	return out, nil
}

// WithID is the frame's bytes with another request id: a call forwarded on
// an upstream connection, or its answer returned to the caller.
func (f *Frame) WithID(id int64) []byte {
	b := bytes.Clone(f.raw)
	binary.BigEndian.PutUint64(b[4:12], uint64(id))
	return b
}

// ID is the frame's request id.
func (f *Frame) ID() int64 { return f.Header.ID }

// IsRequest reports a call (or an event request such as a heartbeat).
func (f *Frame) IsRequest() bool { return f.Header.Type&hessian.PackageRequest != 0 }

// TwoWay reports a request that expects an answer.
func (f *Frame) TwoWay() bool { return f.Header.Type&hessian.PackageRequest_TwoWay != 0 }

// EncodeResponse is the answer to call id: value, or the exception the
// method threw (err).
func EncodeResponse(id int64, value any, exception error, attachments map[string]string) ([]byte, error) {
	att := map[string]string{"dubbo": "2.0.2"}
	for k, v := range attachments {
		att[k] = v
	}
	resp := &hessian.Response{RspObj: value, Exception: exception, Attachments: att}
	return hessian.NewHessianCodec(nil).Write(hessian.Service{},
		hessian.DubboHeader{SerialID: Hessian2SerialID, Type: hessian.PackageResponse, ID: id, ResponseStatus: hessian.Response_OK}, resp)
}

// EncodeStatus is an error answer to call id with a Dubbo status other
// than OK (SERVICE_NOT_FOUND, SERVER_TIMEOUT, ...) and a message.
func EncodeStatus(id int64, status byte, msg string) ([]byte, error) {
	e := hessian.NewEncoder()
	if err := e.Encode(msg); err != nil {
		return nil, err
	}
	body := e.Buffer()
	frame := make([]byte, HeaderLen+len(body))
	frame[0], frame[1] = 0xda, 0xbb
	frame[2] = Hessian2SerialID
	frame[3] = status
	binary.BigEndian.PutUint64(frame[4:12], uint64(id))
	binary.BigEndian.PutUint32(frame[12:16], uint32(len(body)))
	copy(frame[HeaderLen:], body)
	return frame, nil
}

// HeartbeatResponse answers a heartbeat request.
func HeartbeatResponse(id int64) ([]byte, error) {
	return hessian.NewHessianCodec(nil).Write(hessian.Service{},
		hessian.DubboHeader{SerialID: Hessian2SerialID, Type: hessian.PackageHeartbeat, ID: id, ResponseStatus: hessian.Response_OK}, nil)
}

// Dubbo response statuses the gateway answers with.
const (
	StatusOK              byte = 20
	StatusServerTimeout   byte = 31
	StatusBadRequest      byte = 40
	StatusServiceNotFound byte = 60
	StatusServiceError    byte = 70
	StatusServerError     byte = 80
)

// Unwrapped is the call a generic invocation ($invoke / $invokeAsync:
// method name, parameter types, arguments; what GenericRequest sends)
// stands for, and inv itself otherwise; false for a generic invocation
// whose arguments are malformed.
func (inv *Invocation) Unwrapped() (*Invocation, bool) {
	if m := inv.Service.Method; m != "$invoke" && m != "$invokeAsync" {
		return inv, true
	}
	if len(inv.Args) != 3 {
		return nil, false
	}
	name, ok := inv.Args[0].(string)
	if !ok || name == "" {
		return nil, false
	}
	var types []string
	switch ts := inv.Args[1].(type) {
	case []string:
		types = ts
	case []any:
		for _, t := range ts {
			s, ok := t.(string)
			if !ok {
				return nil, false
			}
			types = append(types, s)
		}
	case nil:
	default:
		return nil, false
	}
	var args []any
	switch as := inv.Args[2].(type) {
	case []any:
		args = as
	case nil:
	default:
		return nil, false
	}
	out := *inv
	out.Service.Method, out.Types, out.Args = name, types, args
	return &out, true
}

// Timeout is the consumer's bound on the call (its "timeout" attachment,
// in milliseconds), or def when it gives none.
func (inv *Invocation) Timeout(def time.Duration) time.Duration {
	// Whole milliseconds only ("1h30" is no timeout, not 1h0m0.03s); at most
	// a day, so that the Duration cannot overflow.
	if ms, err := strconv.ParseInt(inv.Attachments["timeout"], 10, 64); err == nil && ms > 0 && ms <= 24*3600*1000 {
		return time.Duration(ms) * time.Millisecond
	}
	return def
}
