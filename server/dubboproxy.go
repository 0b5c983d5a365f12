package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/apache/dubbo-go-hessian2/java_exception"
	dubbov3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/dubbo_proxy/v3"
	"google.golang.org/grpc/codes"

	"github.com/meshgate/meshgate/config"
	"github.com/meshgate/meshgate/dubbo"
	"github.com/meshgate/meshgate/governance"
	failoverv1 "github.com/meshgate/meshgate/proto/meshgate/extensions/filters/dubbo/failover/v1"
	localappv1 "github.com/meshgate/meshgate/proto/meshgate/extensions/filters/dubbo/local_app/v1"
	"github.com/meshgate/meshgate/registry/announce"
	"github.com/meshgate/meshgate/server/cluster"
	"github.com/meshgate/meshgate/server/localapp"
	"github.com/meshgate/meshgate/server/router"
	"github.com/meshgate/meshgate/server/upstream"
	"github.com/meshgate/meshgate/triple"
)

// dubboProxy serves Dubbo2 consumers on a listener (Envoy's dubbo_proxy
// filter): each call is routed by service and method to a cluster of
// Dubbo2 providers (the frame is forwarded as it came, under a new id) or
// of Triple providers (the arguments go in Triple's non-IDL wrapper).
type dubboProxy struct {
	srv      *Server
	listener string
	services []dubboService
	resolve  router.Resolver[*cluster.Cluster]
	retries  uint32        // failover tries after the first
	timeout  time.Duration // each try's bound when the consumer gives none
	// app serves the calls of the services a local app serves (nil: none).
	app *localapp.App
}

type dubboService struct {
	iface, version, group string // empty: any
	routes                []dubboRoute
}

type dubboRoute struct {
	method string // empty: any
	target router.WeightedTarget[*cluster.Cluster]
}

// dubboCallTimeout bounds a forwarded call whose consumer sent no timeout
// attachment (Dubbo's own default is 1s; a gateway leaves more room).
const dubboCallTimeout = 15 * time.Second

func compileDubboProxy(s *Server, listener string, p *dubbov3.DubboProxy, resolve router.Resolver[*cluster.Cluster]) (*dubboProxy, error) {
	if p.GetProtocolType() != dubbov3.ProtocolType_Dubbo || p.GetSerializationType() != dubbov3.SerializationType_Hessian2 {
		return nil, errors.New("dubbo_proxy: only the Dubbo protocol with hessian2 is supported")
	}
	if p.GetDrds() != nil {
		return nil, errors.New("dubbo_proxy: drds (routes over xDS) is not supported; use multiple_route_config")
	}
	out := &dubboProxy{srv: s, listener: listener, resolve: resolve, timeout: dubboCallTimeout}
	for i, df := range p.GetDubboFilters() {
		switch df.GetName() {
		case config.DubboFailoverFilter:
			var fo failoverv1.Failover
			if err := df.GetConfig().UnmarshalTo(&fo); err != nil {
				return nil, fmt.Errorf("dubbo_proxy: dubbo_filters[%d] (%s): %w", i, df.GetName(), err)
			}
			out.retries = fo.GetRetries()
			if d := fo.GetTimeout(); d != nil && d.AsDuration() > 0 {
				out.timeout = d.AsDuration()
			}
		case config.DubboLocalAppFilter:
			var la localappv1.LocalApp
			if err := df.GetConfig().UnmarshalTo(&la); err != nil {
				return nil, fmt.Errorf("dubbo_proxy: dubbo_filters[%d] (%s): %w", i, df.GetName(), err)
			}
			app, err := localapp.Compile(&la, resolve)
			if err != nil {
				return nil, fmt.Errorf("dubbo_proxy: dubbo_filters[%d] (%s): %w", i, df.GetName(), err)
			}
			out.app = app
		case "envoy.filters.dubbo.router":
		default:
			return nil, fmt.Errorf("dubbo_proxy: dubbo_filters[%d]: filter %q is not supported", i, df.GetName())
		}
	}
	for i, rc := range config.DubboRouteConfigs(p) {
		svc := dubboService{iface: rc.GetInterface(), version: rc.GetVersion(), group: rc.GetGroup()}
		if svc.iface == "*" {
			svc.iface = ""
		}
		for j, r := range rc.GetRoutes() {
			var dr dubboRoute
			if m := r.GetMatch().GetMethod(); m != nil {
				if len(m.GetParamsMatch()) > 0 {
					return nil, fmt.Errorf("dubbo_proxy: route_config[%d].routes[%d]: params_match is not supported", i, j)
				}
				if m.GetName().GetExact() == "" {
					return nil, fmt.Errorf("dubbo_proxy: route_config[%d].routes[%d]: only an exact method name is supported", i, j)
				}
				dr.method = m.GetName().GetExact()
			}
			if len(r.GetMatch().GetHeaders()) > 0 {
				return nil, fmt.Errorf("dubbo_proxy: route_config[%d].routes[%d]: header matches are not supported", i, j)
			}
			name := r.GetRoute().GetCluster()
			if name == "" {
				return nil, fmt.Errorf("dubbo_proxy: route_config[%d].routes[%d]: needs a cluster", i, j)
			}
			c, ok := resolve(name)
			dr.target = router.WeightedTarget[*cluster.Cluster]{Name: name, Weight: 1, Target: c, Found: ok}
			svc.routes = append(svc.routes, dr)
		}
		out.services = append(out.services, svc)
	}
	return out, nil
}

// route finds the cluster of a call.
func (p *dubboProxy) route(s dubbo.Service) *router.WeightedTarget[*cluster.Cluster] {
	for i := range p.services {
		svc := &p.services[i]
		if (svc.iface != "" && svc.iface != s.Interface) || (svc.version != "" && svc.version != s.Version) || (svc.group != "" && svc.group != s.Group) {
			continue
		}
		for j := range svc.routes {
			if r := &svc.routes[j]; r.method == "" || r.method == s.Method {
				return &r.target
			}
		}
	}
	return nil
}

// serveDubbo reads a consumer's frames until it leaves or the listener
// closes; calls run concurrently and their answers are written whole.
func (l *listener) serveDubbo(c net.Conn, p *dubboProxy) {
	var (
		wmu      sync.Mutex
		inflight sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer func() {
		inflight.Wait()
		cancel()
		_ = c.Close()
	}()
	go func() {
		select {
		case <-l.closed:
			// Draining: no new calls; those in flight finish first.
			_ = c.SetReadDeadline(time.Now())
		case <-ctx.Done():
		}
	}()
	write := func(b []byte) {
		wmu.Lock()
		defer wmu.Unlock()
		_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(b); err != nil {
			_ = c.Close()
		}
	}
	br := bufio.NewReaderSize(c, 32<<10)
	for {
		f, err := dubbo.ReadFrame(br, dubboMaxFrame)
		if err != nil {
			if errors.Is(err, dubbo.ErrFrame) {
				p.srv.log.Debug("dubbo consumer sent a malformed frame", "listener", p.listener, "remote", c.RemoteAddr().String(), "error", err)
			}
			return
		}
		if !f.IsRequest() {
			continue // a consumer has nothing else to send
		}
		if f.Heartbeat() {
			if f.TwoWay() {
				if b, err := dubbo.HeartbeatResponse(f.ID()); err == nil {
					write(b)
				}
			}
			continue
		}
		inflight.Add(1)
		go func() {
			defer inflight.Done()
			if b := p.call(ctx, f); b != nil && f.TwoWay() {
				write(b)
			}
		}()
	}
}

// dubboMaxFrame bounds a consumer's frame (Dubbo's payload default).
const dubboMaxFrame = 8 << 20

// call runs one consumer call and returns the answer frame.
func (p *dubboProxy) call(ctx context.Context, f *dubbo.Frame) []byte {
	start := time.Now()
	inv, err := f.Request()
	if err != nil {
		return statusAnswer(f.ID(), dubbo.StatusBadRequest, err.Error())
	}
	route, cname, status := "", "", int(dubbo.StatusOK)
	defer func() {
		p.srv.metrics.Request(p.listener, route, cname, status, -1, time.Since(start))
	}()
	if p.app != nil {
		if answer, ok := serveMetadata(p.app, f, inv); ok {
			route, cname = announce.MetadataServiceName+".getMetadataInfo", p.app.Cluster
			return answer
		}
		if svc := p.app.Service(inv.Service); svc != nil {
			cname = p.app.Cluster
			if _, declared := svc.Methods[inv.Service.Method]; declared { // a label only for what the config names
				route = svc.Interface + "." + inv.Service.Method
			}
			if p.app.GRPC {
				status = int(dubbo.StatusBadRequest)
				return statusAnswer(f.ID(), dubbo.StatusBadRequest, fmt.Sprintf("%s is served by a gRPC app: call it over Triple (its protobuf IDL)", svc.Interface))
			}
			answer, st := p.callApp(ctx, f, inv, p.app, svc)
			status = int(st)
			return answer
		}
	}
	target := p.route(inv.Service)
	if target == nil {
		status = int(dubbo.StatusServiceNotFound)
		return statusAnswer(f.ID(), dubbo.StatusServiceNotFound,
			fmt.Sprintf("no route for %s:%s group %q method %s on listener %s", inv.Service.Interface, inv.Service.Version, inv.Service.Group, inv.Service.Method, p.listener))
	}
	route, cname = inv.Service.Interface+"."+inv.Service.Method, target.Name
	if name, c, ok := cluster.ResolveService(p.resolve, target.Name, false); ok {
		target = &router.WeightedTarget[*cluster.Cluster]{Name: name, Weight: 1, Target: c, Found: c != nil}
		cname = name
	}
	if !target.Found {
		status = int(dubbo.StatusServiceNotFound)
		return statusAnswer(f.ID(), dubbo.StatusServiceNotFound, fmt.Sprintf("cluster %q is not configured", target.Name))
	}
	cl := target.Target
	// Dubbo's dynamic configuration for meshgate as the consumer
	// overrides the listener's defaults; a consumer's own timeout
	// attachment still wins, as it would at a provider.
	def, retries := p.timeout, p.retries
	if dc := cl.DubboConsumer; dc.Timeout > 0 {
		def = dc.Timeout
	}
	if dc := cl.DubboConsumer; dc.HasRetries {
		retries = uint32(dc.Retries)
	}
	timeout := inv.Timeout(def)
	// Dubbo's failover: another provider after a failed try, each try
	// bounded by the timeout; the method's own exception is an answer.
	pc := &proxyCall{f: f, inv: inv, cl: cl, timeout: timeout}
	call := upstream.Call{Cluster: cl, Pick: governance.PickInfo{Hash: rand.Uint64()}, SkipTried: true}
	if cl.HasDubboRules() {
		u, ok := inv.Unwrapped() // a generic call's rules see the method it names
		if !ok {
			u = inv
		}
		call.Dubbo = dubbo.RulesCall(u.Service.Method, u.Args, inv.Attachments)
	}
	if f.TwoWay() {
		call.Retries = int(retries)
		call.Retriable = func(upstream.Result) bool { return pc.retry }
	}
	if _, _, err := upstream.Run(ctx, call, pc.attempt); err != nil {
		status = int(dubbo.StatusServiceError)
		return statusAnswer(f.ID(), dubbo.StatusServiceError, err.Error())
	}
	status = int(pc.status)
	return pc.answer
}

// proxyCall is one call of a Dubbo2 consumer on its way through its tries.
type proxyCall struct {
	f       *dubbo.Frame
	inv     *dubbo.Invocation
	cl      *cluster.Cluster
	timeout time.Duration
	// What the last try left: the answer for the consumer, its status,
	// and whether another provider may do better (a connection failure,
	// a provider's error status, the try's timeout).
	answer []byte
	status byte
	retry  bool
}

// attempt sends the call to a's provider.
func (pc *proxyCall) attempt(parent context.Context, a *cluster.Attempt, _ int) upstream.Result {
	f, inv, cl := pc.f, pc.inv, pc.cl
	ctx, cancel := context.WithTimeout(parent, pc.timeout)
	defer cancel()
	// judge: a failure counts against the host unless the consumer left.
	judge := parent.Err() == nil
	done := func(answer []byte, st byte, retry bool, out governance.Outcome, judged bool) upstream.Result {
		pc.answer, pc.status, pc.retry = answer, st, retry
		return upstream.Result{Outcome: out, Judge: judged, Failed: retry}
	}
	switch {
	case cl.Dubbo != nil:
		if !f.TwoWay() {
			err := cl.Dubbo.SendRaw(ctx, a.Host.Address, f)
			return done(nil, dubbo.StatusOK, false, outcomeOf(err), true)
		}
		resp, err := cl.Dubbo.CallRaw(ctx, a.Host.Address, f)
		if err != nil {
			st, msg := upstreamStatus(ctx, err)
			return done(statusAnswer(f.ID(), st, msg), st, true, outcomeOf(err), judge)
		}
		switch rs := resp.Header.ResponseStatus; rs {
		case dubbo.StatusOK:
			return done(resp.WithID(f.ID()), rs, false, governance.Outcome{Status: 200}, true)
		case dubbo.StatusBadRequest:
			// The consumer's own mistake: no provider does better.
			return done(resp.WithID(f.ID()), rs, false, governance.Outcome{Status: 400}, true)
		default:
			return done(resp.WithID(f.ID()), rs, true, governance.Outcome{Status: 503}, true)
		}
	case cl.Triple:
		resp, err := triple.Call(ctx, cl.Transport(true), cl.Scheme(), a.Host.Address, triple.Request{
			Service: triple.Service(inv.Service), Args: inv.Args, Types: inv.Types, Attachments: inv.Attachments, Timeout: pc.timeout,
		})
		var tst *triple.StatusError
		switch {
		case err == nil:
			b, err := dubbo.EncodeResponse(f.ID(), resp.Value, nil, resp.Attachments)
			if err != nil {
				return done(statusAnswer(f.ID(), dubbo.StatusServerError, "encoding the answer: "+err.Error()), dubbo.StatusServerError, false,
					governance.Outcome{Status: 200}, true)
			}
			return done(b, dubbo.StatusOK, false, governance.Outcome{Status: 200}, true)
		case errors.As(err, &tst) && tst.Code == codes.Unknown:
			// The method's error: the consumer gets it as an exception.
			b, _ := dubbo.EncodeResponse(f.ID(), nil, java_exception.NewThrowable(tst.Message), nil)
			return done(b, dubbo.StatusOK, false, governance.Outcome{Status: 200}, true)
		default:
			st, msg := upstreamStatus(ctx, err)
			return done(statusAnswer(f.ID(), st, msg), st, true, outcomeOf(err), judge)
		}
	}
	return done(statusAnswer(f.ID(), dubbo.StatusServiceNotFound, fmt.Sprintf("cluster %q holds neither Dubbo2 nor Triple providers", cl.Name)),
		dubbo.StatusServiceNotFound, false, governance.Outcome{Status: 200}, false)
}

func statusAnswer(id int64, st byte, msg string) []byte {
	b, _ := dubbo.EncodeStatus(id, st, msg)
	return b
}

// upstreamStatus maps a failed forward onto the Dubbo status a consumer
// acts on.
func upstreamStatus(ctx context.Context, err error) (byte, string) {
	var tst *triple.StatusError
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded):
		return dubbo.StatusServerTimeout, "upstream timeout: " + err.Error()
	case errors.As(err, &tst) && tst.Code == codes.Unimplemented:
		return dubbo.StatusServiceNotFound, err.Error()
	case errors.As(err, &tst) && tst.Code == codes.DeadlineExceeded:
		return dubbo.StatusServerTimeout, err.Error()
	}
	return dubbo.StatusServiceError, err.Error()
}

func outcomeOf(err error) governance.Outcome {
	var (
		ce  *dubbo.ConnectError
		tce *triple.ConnectError
	)
	switch {
	case err == nil:
		return governance.Outcome{Status: 200}
	case errors.As(err, &ce), errors.As(err, &tce):
		return governance.Outcome{Local: governance.ConnectFailure}
	case errors.Is(err, context.DeadlineExceeded):
		return governance.Outcome{Local: governance.Timeout}
	}
	return governance.Outcome{Local: governance.Reset}
}
