package transcoder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	transcoderv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/grpc_json_transcoder/v3"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/meshgate/meshgate/governance"
	"github.com/meshgate/meshgate/proto/descriptors"
	adminv1 "github.com/meshgate/meshgate/proto/meshgate/admin/v1"
	grpcreflectionv1 "github.com/meshgate/meshgate/proto/meshgate/extensions/filters/http/grpc_reflection/v1"
	"github.com/meshgate/meshgate/server/cluster"
	"github.com/meshgate/meshgate/triple"
)

// Reflection's defaults (the GrpcReflection proto documents them).
const (
	defaultReflectionRefresh = 5 * time.Minute
	defaultReflectionTimeout = 5 * time.Second
	// reflectionRetry spaces fetches after a failure, so a backend that
	// is down is not asked on every request.
	reflectionRetry = time.Second
)

// reflectedTranscoder is a transcoder whose descriptors a cluster's hosts
// give by gRPC server reflection. They are fetched on the first request
// that needs them, cached (across config reloads, in the Server), and
// fetched again in the background once older than the refresh interval;
// a failed refresh keeps the last good transcoder.
type reflectedTranscoder struct {
	cfg     *transcoderv3.GrpcJsonTranscoder
	static  *descriptorpb.FileDescriptorSet // the transcoder's own set, used beside
	cluster string
	refresh time.Duration
	timeout time.Duration
	state   *reflectionState
	// What the listener's build gave: its name, the config's clusters,
	// the logger, and the background runner.
	listener string
	clusters func(string) (*cluster.Cluster, bool)
	log      *slog.Logger
	goBg     func(func())
}

// reflectionState is what the fetches found; it outlives a recompile of
// an unchanged listener.
type reflectionState struct {
	mu       sync.Mutex // one fetch at a time
	cur      atomic.Pointer[reflected]
	fetching atomic.Bool // a background refresh runs
}

type reflected struct {
	tr      *jsonTranscoder // nil until a fetch succeeded
	files   []string
	fetched time.Time // of tr
	tried   time.Time // the last attempt
	err     error     // of the last attempt
}

func newReflectedTranscoder(cfg *transcoderv3.GrpcJsonTranscoder, rc *grpcreflectionv1.GrpcReflection, state *reflectionState) (*reflectedTranscoder, error) {
	rt := &reflectedTranscoder{cfg: cfg, cluster: rc.GetCluster(), refresh: defaultReflectionRefresh,
		timeout: defaultReflectionTimeout, state: state, static: &descriptorpb.FileDescriptorSet{}}
	if rt.cluster == "" {
		return nil, errors.New("cluster is needed")
	}
	if d := rc.GetRefreshInterval(); d != nil && d.AsDuration() > 0 {
		rt.refresh = d.AsDuration()
	}
	if d := rc.GetTimeout(); d != nil && d.AsDuration() > 0 {
		rt.timeout = d.AsDuration()
	}
	if bin := cfg.GetProtoDescriptorBin(); len(bin) > 0 {
		set, err := descriptors.Parse(bin)
		if err != nil {
			return nil, err
		}
		rt.static = set
	}
	if len(cfg.GetServices()) == 0 {
		return nil, errors.New("the transcoder names no services to ask for")
	}
	return rt, nil
}

// current is the transcoder to use now, fetching the descriptors first if
// none were; nil when they cannot be had.
func (rt *reflectedTranscoder) current(ctx context.Context) *jsonTranscoder {
	st := rt.state.cur.Load()
	now := time.Now()
	if st != nil && st.tr != nil {
		if now.Sub(st.fetched) > rt.refresh && now.Sub(st.tried) > reflectionRetry && rt.state.fetching.CompareAndSwap(false, true) {
			rt.goBg(func() {
				defer rt.state.fetching.Store(false)
				rt.fetch(context.Background())
			})
		}
		return st.tr
	}
	if st != nil && now.Sub(st.tried) < reflectionRetry {
		return nil
	}
	rt.fetch(ctx)
	return rt.state.cur.Load().tr
}

// unavailable says why the transcoder has no descriptors.
func (rt *reflectedTranscoder) unavailable() string {
	msg := fmt.Sprintf("the transcoder's descriptors from cluster %q by gRPC reflection are not available", rt.cluster)
	if st := rt.state.cur.Load(); st != nil && st.err != nil {
		msg += ": " + st.err.Error()
	}
	return msg
}

// fetch asks one host of the cluster for the descriptors and builds the
// transcoder; a failure is kept beside the last good transcoder.
func (rt *reflectedTranscoder) fetch(ctx context.Context) {
	rt.state.mu.Lock()
	defer rt.state.mu.Unlock()
	prev := rt.state.cur.Load()
	if prev != nil && time.Since(prev.tried) < reflectionRetry {
		return // another request just fetched
	}
	ctx, cancel := context.WithTimeout(ctx, rt.timeout)
	defer cancel()
	next := &reflected{tried: time.Now()}
	if prev != nil {
		next.tr, next.files, next.fetched = prev.tr, prev.files, prev.fetched
	}
	tr, files, err := rt.build(ctx)
	if err != nil {
		next.err = err
		rt.log.Warn("gRPC reflection failed", "listener", rt.listener, "cluster", rt.cluster, "error", err)
	} else {
		next.tr, next.files, next.fetched = tr, files, time.Now()
	}
	rt.state.cur.Store(next)
}

func (rt *reflectedTranscoder) build(ctx context.Context) (*jsonTranscoder, []string, error) {
	cl, ok := rt.clusters(rt.cluster)
	if !ok {
		return nil, nil, fmt.Errorf("cluster %q is not known", rt.cluster)
	}
	a, err := cl.Begin(governance.PickInfo{}, nil)
	if err != nil {
		return nil, nil, err
	}
	invoke := func(ctx context.Context, path string, req []byte) ([]byte, error) {
		msg, _, err := triple.CallProto(ctx, cl.Transport(true), cl.Scheme(), a.Host.Address, path, req, nil, rt.timeout)
		var se *triple.StatusError
		if errors.As(err, &se) {
			if se.Answer != nil {
				// The answer came; dubbo-go (3.3) ends each reflection
				// stream with UNKNOWN "EOF" after it.
				return se.Answer, nil
			}
			return nil, status.Error(se.Code, se.Message)
		}
		return msg, err
	}
	set, err := descriptors.Reflect(ctx, invoke, rt.cfg.GetServices())
	// A host without reflection is not an unhealthy host.
	a.End(governance.Outcome{Status: 200}, err == nil)
	if err != nil {
		return nil, nil, fmt.Errorf("asking %s of cluster %q: %w", a.Host.Address, rt.cluster, err)
	}
	// The config's own files first; reflection's take the rest.
	merged := proto.Clone(rt.static).(*descriptorpb.FileDescriptorSet)
	have := map[string]bool{}
	for _, f := range merged.GetFile() {
		have[f.GetName()] = true
	}
	for _, f := range set.GetFile() {
		if !have[f.GetName()] {
			merged.File = append(merged.File, f)
		}
	}
	files, err := descriptors.Files(merged)
	if err != nil {
		return nil, nil, err
	}
	tr, err := newTranscoder(rt.cfg, files)
	if err != nil {
		return nil, nil, err
	}
	names := make([]string, 0, len(merged.GetFile()))
	for _, f := range merged.GetFile() {
		names = append(names, f.GetName())
	}
	return tr, names, nil
}

// reflectionKey names the state of a listener's reflected transcoder:
// the running one's is reused when the listener's config of it is the same.
func reflectionKey(rc *grpcreflectionv1.GrpcReflection, cfg *transcoderv3.GrpcJsonTranscoder) string {
	a, _ := proto.MarshalOptions{Deterministic: true}.Marshal(rc)
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(cfg)
	return "reflection\x00" + string(a) + "\x00" + string(b)
}

// describe reports what the reflected transcoder loaded, or why not.
func (rt *reflectedTranscoder) describe(listener string) *adminv1.TranscoderDescriptors {
	d := &adminv1.TranscoderDescriptors{Listener: listener, Source: "reflection", Cluster: rt.cluster, Services: rt.cfg.GetServices()}
	if cur := rt.state.cur.Load(); cur != nil {
		if cur.tr != nil {
			d = cur.tr.describe(listener, "reflection")
			d.Cluster = rt.cluster
			d.LastUpdated = timestamppb.New(cur.fetched)
		}
		if cur.err != nil {
			d.Error = cur.err.Error()
		}
	}
	return d
}

func (t *jsonTranscoder) describe(listener, source string) *adminv1.TranscoderDescriptors {
	d := &adminv1.TranscoderDescriptors{Listener: listener, Source: source, Files: t.files, HttpRules: uint32(t.rules.Len())}
	for name := range t.services {
		d.Services = append(d.Services, name)
	}
	slices.Sort(d.Services)
	return d
}
