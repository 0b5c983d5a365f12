// Package demo is the in-process demo backend of `meshgate run` and the
// grpc-go backend of the integration tests and benchmarks: the
// demo.v1.DemoService (one method per gRPC stream kind) and an HTTP echo.
package demo

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	demov1 "github.com/meshgate/meshgate/proto/demo/v1"
)

// Service implements demo.v1.DemoService.
type Service struct {
	demov1.UnimplementedDemoServiceServer
	// Name is returned in every response's server field.
	Name string

	// Sent counts the messages ServerStream and BidiStream have sent.
	Sent atomic.Int64
	// Cancels receives the method name of each call the client cancelled
	// (or whose deadline passed) while the server was still working, when
	// the channel has room.
	Cancels chan string
	// Faults make the whole instance misbehave, for failure tests.
	Faults *Faults
	// Calls counts the unary calls that reached the instance.
	Calls atomic.Int64
	// NoEcho leaves the request's headers and metadata out of the answers:
	// the benchmark's backend, whose work per call must not depend on which
	// headers the proxy in front of it adds.
	NoEcho atomic.Bool
}

// Faults are switches that make an instance fail or slow down on purpose.
type Faults struct {
	// GRPCCode, when non-zero, answers every gRPC call with this status.
	GRPCCode atomic.Int32
	// HTTPStatus, when non-zero, answers every HTTP request with it.
	HTTPStatus atomic.Int32
	// Delay, when non-zero, holds every call and request this long first.
	Delay atomic.Int64 // nanoseconds
}

func (f *Faults) apply(ctx context.Context, s *Service, method string) error {
	if d := time.Duration(f.Delay.Load()); d > 0 {
		if err := s.wait(ctx, method, d); err != nil {
			return err
		}
	}
	if c := f.GRPCCode.Load(); c != 0 {
		return status.Errorf(codes.Code(c), "%s is failing on purpose", s.Name)
	}
	return nil
}

// NewService returns a Service named name.
func NewService(name string) *Service {
	return &Service{Name: name, Cancels: make(chan string, 64), Faults: &Faults{}}
}

func (s *Service) cancelled(ctx context.Context, method string) error {
	select {
	case s.Cancels <- method:
	default:
	}
	return status.FromContextError(ctx.Err()).Err()
}

// wait sleeps d unless the call ends first.
func (s *Service) wait(ctx context.Context, method string, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return s.cancelled(ctx, method)
	}
}

// echoMetadata sends every "x-" request key back as a header, and as a
// trailer named "x-trailer-<rest>"; it returns them ("-bin" values in
// base64) for the response's metadata field. With s.NoEcho it does nothing.
func (s *Service) echoMetadata(ctx context.Context) map[string]string {
	if s.NoEcho.Load() {
		return nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	seen := map[string]string{}
	header, trailer := metadata.MD{}, metadata.MD{}
	for k, vs := range md {
		if !strings.HasPrefix(k, "x-") {
			continue
		}
		header[k] = vs
		trailer["x-trailer-"+k[2:]] = vs
		if strings.HasSuffix(k, "-bin") {
			// Binary values are not valid proto strings: report them base64.
			enc := make([]string, len(vs))
			for i, v := range vs {
				enc[i] = base64.StdEncoding.EncodeToString([]byte(v))
			}
			vs = enc
		}
		seen[k] = strings.Join(vs, ",")
	}
	if len(header) > 0 {
		_ = grpc.SetHeader(ctx, header)
		_ = grpc.SetTrailer(ctx, trailer)
	}
	return seen
}

func failure(code int32, msg string) error {
	if code == 0 {
		return nil
	}
	if msg == "" {
		msg = "failure requested by the caller"
	}
	return status.Error(codes.Code(code), msg)
}

// Echo answers with the request's message and payload.
func (s *Service) Echo(ctx context.Context, req *demov1.EchoRequest) (*demov1.EchoResponse, error) {
	s.Calls.Add(1)
	md := s.echoMetadata(ctx)
	if err := s.Faults.apply(ctx, s, "Echo"); err != nil {
		return nil, err
	}
	if err := s.wait(ctx, "Echo", time.Duration(req.GetDelayMs())*time.Millisecond); err != nil {
		return nil, err
	}
	if err := failure(req.GetFailCode(), req.GetFailMessage()); err != nil {
		return nil, err
	}
	return &demov1.EchoResponse{Message: req.GetMessage(), Payload: req.GetPayload(), Metadata: md, Server: s.Name}, nil
}

// ServerStream sends count messages of payload_size bytes.
func (s *Service) ServerStream(req *demov1.ServerStreamRequest, stream grpc.ServerStreamingServer[demov1.EchoResponse]) error {
	ctx := stream.Context()
	md := s.echoMetadata(ctx)
	payload := bytes.Repeat([]byte{'x'}, int(req.GetPayloadSize()))
	for i := int64(0); i < req.GetCount(); i++ {
		if err := s.wait(ctx, "ServerStream", time.Duration(req.GetIntervalMs())*time.Millisecond); err != nil {
			return err
		}
		resp := &demov1.EchoResponse{Message: req.GetMessage(), Payload: payload, Sequence: i, Server: s.Name}
		if i == 0 {
			resp.Metadata = md
		}
		if err := stream.Send(resp); err != nil {
			if ctx.Err() != nil {
				return s.cancelled(ctx, "ServerStream")
			}
			return err
		}
		s.Sent.Add(1)
	}
	return failure(req.GetFailCode(), "")
}

// ClientStream counts what the client sends.
func (s *Service) ClientStream(stream grpc.ClientStreamingServer[demov1.EchoRequest, demov1.ClientStreamResponse]) error {
	ctx := stream.Context()
	s.echoMetadata(ctx)
	var out demov1.ClientStreamResponse
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&out)
		}
		if err != nil {
			if ctx.Err() != nil {
				return s.cancelled(ctx, "ClientStream")
			}
			return err
		}
		if err := failure(req.GetFailCode(), req.GetFailMessage()); err != nil {
			return err
		}
		out.Count++
		out.Bytes += int64(len(req.GetPayload()))
		out.LastMessage = req.GetMessage()
	}
}

// BidiStream answers each message as it arrives.
func (s *Service) BidiStream(stream grpc.BidiStreamingServer[demov1.EchoRequest, demov1.EchoResponse]) error {
	ctx := stream.Context()
	md := s.echoMetadata(ctx)
	for i := int64(0); ; i++ {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return s.cancelled(ctx, "BidiStream")
			}
			return err
		}
		if err := s.wait(ctx, "BidiStream", time.Duration(req.GetDelayMs())*time.Millisecond); err != nil {
			return err
		}
		if err := failure(req.GetFailCode(), req.GetFailMessage()); err != nil {
			return err
		}
		resp := &demov1.EchoResponse{Message: req.GetMessage(), Payload: req.GetPayload(), Sequence: i, Server: s.Name}
		if i == 0 {
			resp.Metadata = md
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
		s.Sent.Add(1)
	}
}

// EchoHandler answers any HTTP request with a JSON description of it.
// Query parameters steer it: status=N answers with that status,
// delay=250ms waits first, size=N sends a body of N bytes instead. faults
// (may be nil) make every request fail or wait.
func EchoHandler(s *Service) http.Handler {
	name, faults := s.Name, s.Faults
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d := time.Duration(faults.Delay.Load()); d > 0 {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
		}
		if st := faults.HTTPStatus.Load(); st != 0 {
			http.Error(w, name+" is failing on purpose", int(st))
			return
		}
		q := r.URL.Query()
		if d, err := time.ParseDuration(q.Get("delay")); err == nil {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
		}
		body, _ := io.ReadAll(r.Body)
		code := http.StatusOK
		if n, err := strconv.Atoi(q.Get("status")); err == nil && n >= 200 && n <= 599 {
			code = n
		}
		if n, err := strconv.Atoi(q.Get("size")); err == nil && n >= 0 {
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Header().Set("Content-Length", strconv.Itoa(n))
			w.WriteHeader(code)
			chunk := bytes.Repeat([]byte{'x'}, 32<<10)
			for n > 0 {
				k := min(n, len(chunk))
				if _, err := w.Write(chunk[:k]); err != nil {
					return
				}
				n -= k
			}
			return
		}
		headers := map[string]string{}
		if !s.NoEcho.Load() {
			for k, vs := range r.Header {
				headers[strings.ToLower(k)] = strings.Join(vs, ",")
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]any{
			"server":  name,
			"method":  r.Method,
			"host":    r.Host,
			"path":    r.URL.Path,
			"query":   r.URL.RawQuery,
			"proto":   r.Proto,
			"headers": headers,
			"body":    string(body),
		})
	})
}

// Backend is a running demo backend: a gRPC server (with server reflection)
// and an HTTP echo server.
type Backend struct {
	Service *Service
	// Health is the grpc.health.v1 service (SERVING for "" and the demo
	// service at start).
	Health   *health.Server
	GRPCAddr string
	HTTPAddr string

	grpc *grpc.Server
	http *http.Server
	wg   sync.WaitGroup
}

// Start serves the demo backend on the given addresses ("127.0.0.1:0" picks
// a free port). An empty address skips that server.
func Start(ctx context.Context, name, grpcAddr, httpAddr string) (*Backend, error) {
	b := &Backend{Service: NewService(name)}
	var lc net.ListenConfig
	if grpcAddr != "" {
		gl, err := lc.Listen(ctx, "tcp", grpcAddr)
		if err != nil {
			return nil, err
		}
		b.GRPCAddr = gl.Addr().String()
		b.grpc = grpc.NewServer()
		demov1.RegisterDemoServiceServer(b.grpc, b.Service)
		b.Health = health.NewServer()
		b.Health.SetServingStatus("demo.v1.DemoService", healthpb.HealthCheckResponse_SERVING)
		healthpb.RegisterHealthServer(b.grpc, b.Health)
		reflection.Register(b.grpc)
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			_ = b.grpc.Serve(gl)
		}()
	}
	if httpAddr != "" {
		hl, err := lc.Listen(ctx, "tcp", httpAddr)
		if err != nil {
			b.Stop()
			return nil, err
		}
		b.HTTPAddr = hl.Addr().String()
		var p http.Protocols
		p.SetHTTP1(true)
		p.SetUnencryptedHTTP2(true)
		b.http = &http.Server{Handler: EchoHandler(b.Service), Protocols: &p, ReadHeaderTimeout: 10 * time.Second}
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			_ = b.http.Serve(hl)
		}()
	}
	return b, nil
}

// Stop ends both servers at once, cutting open calls.
func (b *Backend) Stop() {
	if b.grpc != nil {
		b.grpc.Stop()
	}
	if b.http != nil {
		_ = b.http.Close()
	}
	b.wg.Wait()
}
