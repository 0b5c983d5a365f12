package dubbo

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	hessian "github.com/apache/dubbo-go-hessian2"
)

// Service names the target of a call.
type Service struct {
	Interface, Version, Group, Method string
}

// maxResponse bounds a response body a one-shot call accepts.
const maxResponse = 16 << 20

var nextID atomic.Int64

// Call makes one two-way hessian2 call on a connection of its own: for
// rare calls (a provider's metadata), not for traffic.
func Call(ctx context.Context, addr string, svc Service, args []any, attachments map[string]string) (any, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dubbo: dial %s: %w", addr, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	} else {
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()

	id := nextID.Add(1)
	if attachments == nil {
		attachments = map[string]string{}
	}
	codec := hessian.NewHessianCodec(nil)
	frame, err := codec.Write(hessian.Service{
		Path: svc.Interface, Interface: svc.Interface, Version: svc.Version, Group: svc.Group, Method: svc.Method,
	}, hessian.DubboHeader{SerialID: Hessian2SerialID, Type: hessian.PackageRequest_TwoWay, ID: id}, hessian.NewRequest(args, attachments))
	if err != nil {
		return nil, fmt.Errorf("dubbo: encode %s.%s: %w", svc.Interface, svc.Method, err)
	}
	if _, err := conn.Write(frame); err != nil {
		return nil, fmt.Errorf("dubbo: send to %s: %w", addr, err)
	}
	for {
		f, err := ReadFrame(conn, maxResponse)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("dubbo: read from %s: %w", addr, err)
		}
		if f.Heartbeat() || f.Header.ID != id {
			continue
		}
		v, _, err := f.Response()
		return v, err
	}
}

// CallMetadataService asks the MetadataService of a Dubbo 3 provider (group
// app, version 1.0.0, over the dubbo protocol) for the MetadataInfo of a
// revision, and returns the decoded hessian2 value (registry reads it).
func CallMetadataService(ctx context.Context, addr, app, revision string) (any, error) {
	return Call(ctx, addr, Service{
		Interface: "org.apache.dubbo.metadata.MetadataService", Group: app, Version: "1.0.0", Method: "getMetadataInfo",
	}, []any{revision}, nil)
}
