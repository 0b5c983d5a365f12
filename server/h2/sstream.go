package h2

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/meshgate/meshgate/server/h2/hpackcodec"
)

// errStreamClosed is what writing to a stream the client reset returns.
var errStreamClosed = errors.New("h2: stream closed by the client")

// serverStream is one request being served.
type serverStream struct {
	sc     *serverConn
	id     uint32
	req    *http.Request
	cancel context.CancelCauseFunc
	// sendWindow is the stream's send window (under sc.mu).
	sendWindow int32
	aborted    atomic.Bool
	answered   atomic.Bool // the answer's HEADERS went (a reset after is not premature)

	mu   sync.Mutex
	cond sync.Cond // body data or its end arrived
	// The request body not read yet and what reading it returns after
	// (io.EOF at its end); bodyClosed once the handler closed it.
	body       dataBuffer
	bodyErr    error
	bodyClosed bool
	recv       recvFlow
	reqBody    requestBody    // the request's Body (in the stream: one allocation less)
	rw         responseWriter // the handler's, likewise
	// ctx is the request's context; respNeverIndexed what it tells the
	// Transport that forwards the request (likewise in the stream).
	ctx              streamContext
	respNeverIndexed neverIndexedSink
	// declared is the request's content-length (-1: none), received what
	// came so far.
	declared, received int64
}

func newServerStream(sc *serverConn, id uint32, req *http.Request, ended bool) *serverStream {
	st := &serverStream{sc: sc, id: id, recv: recvFlow{avail: sc.set.StreamWindow}, declared: req.ContentLength}
	st.cond.L = &st.mu
	ctx, cancel := context.WithCancelCause(req.Context()) // the connection's, or it with NeverIndexed
	st.cancel = cancel
	st.ctx = streamContext{Context: ctx, sink: &st.respNeverIndexed}
	if ended {
		st.bodyErr = io.EOF
		req.Body, req.ContentLength = http.NoBody, 0
	} else {
		st.reqBody.st = st
		req.Body = &st.reqBody
	}
	st.req = req.WithContext(&st.ctx)
	return st
}

// requestRoom is what newRequest builds a request of, in one allocation:
// the request, its URL (a plain path's) and the backing array of the
// first field values (a gRPC call sends five or six fields).
type requestRoom struct {
	req  http.Request
	url  url.URL
	vals [8]string
}

// newRequest fills room.req from a HEADERS frame (the stream takes a copy
// that carries its context, and WithContext is the only way to give one).
// status > 0 is an answer to give without a handler; < 0 a malformed
// request (reset).
func (sc *serverConn) newRequest(f *http2.MetaHeadersFrame, room *requestRoom) (status int) {
	req := &room.req
	method, path := f.PseudoValue("method"), f.PseudoValue("path")
	scheme, authority := f.PseudoValue("scheme"), f.PseudoValue("authority")
	switch {
	case method == "":
		return -1
	case method == http.MethodConnect:
		return http.StatusMethodNotAllowed
	case path == "" || scheme == "":
		return -1
	}
	var u *url.URL
	if path == "*" || plainPath(path) {
		u = &room.url
		u.Path = path
	} else {
		var err error
		if u, err = url.ParseRequestURI(path); err != nil {
			return http.StatusBadRequest
		}
	}
	fields := f.RegularFields()
	h := make(http.Header, len(fields))
	var vals []string
	if len(fields) <= len(room.vals) {
		vals = room.vals[:len(fields)]
	} else {
		vals = make([]string, len(fields))
	}
	var cookies, neverIndexed []string
	for i, hf := range fields {
		if hf.Sensitive {
			neverIndexed = append(neverIndexed, hf.Name)
		}
		switch hf.Name {
		case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
			return -1 // connection-specific (RFC 9113 section 8.2.2)
		case "te":
			if hf.Value != "trailers" {
				return -1
			}
		case "cookie":
			cookies = append(cookies, hf.Value)
			continue
		}
		addField(h, vals, i, canonicalHeader(hf.Name), hf.Value)
	}
	if len(cookies) > 0 {
		h["Cookie"] = []string{strings.Join(cookies, "; ")}
	}
	if authority == "" {
		authority = h.Get("Host")
	}
	contentLength := int64(-1)
	if cl := h["Content-Length"]; len(cl) > 0 {
		n, err := strconv.ParseInt(cl[0], 10, 64)
		if len(cl) > 1 || err != nil || n < 0 {
			return -1
		}
		contentLength = n
	}
	var trailer http.Header
	for _, v := range h["Trailer"] {
		for _, k := range strings.Split(v, ",") {
			if k = http.CanonicalHeaderKey(strings.TrimSpace(k)); k != "" && httpguts.ValidTrailerHeader(k) {
				if trailer == nil {
					trailer = http.Header{}
				}
				trailer[k] = nil
			}
		}
	}
	delete(h, "Trailer")
	// From the connection's empty request, for its context (the local
	// address): a relayed call's request never gets a stream's context,
	// and what reads it (RBAC's destination_port) must see it all the same.
	*req = *sc.baseReq
	req.Method, req.URL, req.Proto, req.ProtoMajor, req.Header, req.ContentLength = method, u, "HTTP/2.0", 2, h, contentLength
	req.Host, req.RemoteAddr, req.RequestURI, req.TLS, req.Trailer = authority, sc.remoteAddr, path, sc.tls, trailer
	if neverIndexed != nil {
		// Kept beside the header map, which cannot say how a field came
		// (rare: a context value only for the requests that have them).
		*req = *req.WithContext(context.WithValue(req.Context(), neverIndexedKey{}, neverIndexed))
	}
	return 0
}

type neverIndexedKey struct{}

// NeverIndexed is the names of the request fields the client sent as
// literals never indexed (RFC 7541 section 7.1.3): whoever forwards them
// over HPACK must send them so too. nil: none (or not an HTTP/2 request).
func NeverIndexed(ctx context.Context) []string {
	names, _ := ctx.Value(neverIndexedKey{}).([]string)
	return names
}

// neverIndexedSinkKey is what a stream's context answers with the stream's
// neverIndexedSink.
type neverIndexedSinkKey struct{}

// streamContext is a served request's context: the stream's own, which
// also answers neverIndexedSinkKey (a context.WithValue would be one more
// allocation per request, for a rare case). It lives inside the stream, so
// a context kept past the handler (context.WithoutCancel for work after
// the answer) keeps the stream's memory until it is dropped.
type streamContext struct {
	context.Context
	sink *neverIndexedSink
}

func (c *streamContext) String() string { return "h2.streamContext(" + fmt.Sprint(c.Context) + ")" }

func (c *streamContext) Value(key any) any {
	if _, ok := key.(neverIndexedSinkKey); ok {
		return c.sink
	}
	return c.Context.Value(key)
}

// neverIndexedSink holds the names of the response fields an upstream sent
// as literals never indexed, for a request the handler forwarded with the
// Transport: the response's header map drops the flag, and the stream
// sends fields of those names never indexed too (RFC 7541 section 7.1.3).
type neverIndexedSink struct{ names atomic.Pointer[[]string] }

// add records names (the Transport's read loop; a retry, a mirrored
// request or any other call made with the request's context may add more
// while the handler runs). The set stays small: a name is kept once.
func (s *neverIndexedSink) add(names []string) {
	for {
		old := s.names.Load()
		var next []string
		if old != nil {
			next = *old
		}
		grown := false
		for _, n := range names {
			if !slices.Contains(next, n) {
				if !grown {
					next = slices.Clone(next) // published slices are never changed
					grown = true
				}
				next = append(next, n)
			}
		}
		if !grown || s.names.CompareAndSwap(old, &next) {
			return
		}
	}
}

// has reports whether a field of name (lower-case) came never indexed.
func (s *neverIndexedSink) has(name string) bool {
	names := s.names.Load()
	return names != nil && slices.Contains(*names, name)
}

// noteNeverIndexed tells the stream serving the request whose context ctx
// descends from, if any, which of an upstream's response fields came never
// indexed.
func noteNeverIndexed(ctx context.Context, fields []hpack.HeaderField) {
	var names []string
	for _, hf := range fields {
		if hf.Sensitive {
			names = append(names, hf.Name)
		}
	}
	if names == nil {
		return
	}
	if s, ok := ctx.Value(neverIndexedSinkKey{}).(*neverIndexedSink); ok {
		s.add(names)
	}
}

// run serves the stream's request and ends its response.
func (st *serverStream) run() {
	sc := st.sc
	defer sc.handlers.Done()
	rw := &st.rw
	*rw = responseWriter{st: st, header: make(http.Header), head: st.req.Method == http.MethodHead}
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler { //nolint:errorlint // net/http compares it the same way.
				if sc.s.Logger != nil {
					sc.s.Logger.Error("panic serving HTTP/2 request", "panic", p, "stack", string(debug.Stack()))
				}
			}
			st.resetBy(http2.ErrCodeInternal)
		} else {
			rw.finish()
		}
		st.done()
	}()
	sc.s.Handler.ServeHTTP(rw, st.req)
}

// done ends the stream after its handler: what it did not read of the
// request body is dropped, and a client still sending is told to stop.
func (st *serverStream) done() {
	st.mu.Lock()
	unread := int32(st.body.Len())
	st.body.Reset()
	st.reqBody.pre = nil
	st.bodyClosed = true
	stillSending := st.bodyErr == nil
	st.mu.Unlock()
	st.sc.consumed(unread)
	if stillSending && !st.aborted.Load() {
		// The answer is complete: the rest of the request is not needed
		// (RFC 9113 section 8.1).
		_ = st.sc.w.write(true, func(fr *http2.Framer) error { return fr.WriteRSTStream(st.id, http2.ErrCodeNo) })
	}
	st.cancel(context.Canceled)
	st.sc.forgetStream(st)
}

// resetBy resets the stream from this side.
func (st *serverStream) resetBy(code http2.ErrCode) {
	if st.aborted.Swap(true) {
		return
	}
	_ = st.sc.w.write(true, func(fr *http2.Framer) error { return fr.WriteRSTStream(st.id, code) })
	st.fail(http2.StreamError{StreamID: st.id, Code: code})
}

// abort ends a stream the client reset (or whose connection went).
func (st *serverStream) abort(err error) {
	if st.aborted.Swap(true) {
		return
	}
	st.fail(err)
}

func (st *serverStream) fail(err error) {
	st.cancel(err)
	st.mu.Lock()
	if st.bodyErr == nil {
		st.bodyErr = err
	}
	st.cond.Broadcast()
	st.mu.Unlock()
	sc := st.sc
	sc.mu.Lock()
	sc.cond.Broadcast()
	sc.mu.Unlock()
}

func (st *serverStream) onData(data []byte, pad int32, end bool) {
	sc := st.sc
	n := int32(len(data)) + pad
	st.mu.Lock()
	if st.bodyErr != nil || st.bodyClosed {
		closedSide := st.bodyErr == io.EOF
		st.mu.Unlock()
		sc.consumed(int32(len(data)))
		if closedSide {
			st.resetBy(http2.ErrCodeStreamClosed) // DATA after END_STREAM
		}
		return
	}
	if !st.recv.take(n) {
		st.mu.Unlock()
		sc.consumed(int32(len(data)))
		st.resetBy(http2.ErrCodeFlowControl)
		return
	}
	st.received += int64(len(data))
	if st.declared >= 0 && (st.received > st.declared || (end && st.received != st.declared)) {
		st.mu.Unlock()
		sc.consumed(int32(len(data)))
		st.resetBy(http2.ErrCodeProtocol) // the body and its content-length disagree
		return
	}
	st.body.Write(data)
	if end {
		st.bodyErr = io.EOF
	}
	st.cond.Broadcast()
	st.mu.Unlock()
}

func (st *serverStream) onTrailers(f *http2.MetaHeadersFrame) error {
	if !f.StreamEnded() {
		st.resetBy(http2.ErrCodeProtocol)
		return nil
	}
	st.mu.Lock()
	if st.bodyErr != nil {
		st.mu.Unlock()
		st.resetBy(http2.ErrCodeStreamClosed)
		return nil
	}
	if tr := st.req.Trailer; tr != nil {
		for _, hf := range f.RegularFields() {
			k := canonicalHeader(hf.Name)
			if _, declared := tr[k]; declared {
				tr[k] = append(tr[k], hf.Value)
			}
		}
	}
	st.bodyErr = io.EOF
	st.cond.Broadcast()
	st.mu.Unlock()
	return nil
}

// requestBody reads a stream's request body.
type requestBody struct {
	st *serverStream
	// pre is read before the stream's body (under st.mu): what a relayed
	// attempt held of the request when a handler took the call over.
	pre []byte
}

func (b *requestBody) Read(p []byte) (int, error) {
	st := b.st
	st.mu.Lock()
	for len(b.pre) == 0 && st.body.Len() == 0 && st.bodyErr == nil && !st.bodyClosed {
		st.cond.Wait()
	}
	if st.bodyClosed {
		st.mu.Unlock()
		return 0, errors.New("h2: request body closed")
	}
	if len(b.pre) > 0 && len(p) > 0 {
		n := copy(p, b.pre)
		b.pre = b.pre[n:]
		st.mu.Unlock()
		return n, nil
	}
	if st.body.Len() == 0 {
		err := st.bodyErr
		st.mu.Unlock()
		return 0, err
	}
	if len(p) == 0 {
		st.mu.Unlock()
		return 0, nil
	}
	n := st.body.Read(p)
	var add int32
	if st.bodyErr == nil { // after its end, no more window is wanted
		add = st.recv.consumed(int32(n), st.sc.set.StreamWindow)
	}
	st.mu.Unlock()
	st.sc.consumed(int32(n))
	if add > 0 {
		_ = st.sc.w.write(true, func(fr *http2.Framer) error { return fr.WriteWindowUpdate(st.id, uint32(add)) })
	}
	return n, nil
}

// Buffered reports what the body holds now and whether that is all of it.
func (b *requestBody) Buffered() (int, bool) {
	st := b.st
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(b.pre) + st.body.Len(), st.bodyErr == io.EOF && !st.bodyClosed
}

// Close drops what was not read; a client still sending gets no more
// window for it.
func (b *requestBody) Close() error {
	st := b.st
	st.mu.Lock()
	unread := int32(st.body.Len())
	st.body.Reset()
	st.reqBody.pre = nil
	st.bodyClosed = true
	st.cond.Broadcast()
	st.mu.Unlock()
	st.sc.consumed(unread)
	return nil
}

// responseWriter writes a stream's response: HEADERS when the header is
// written (sent with the next flush), DATA as written, the trailers and
// the end when the handler returns, in one flush for a short answer.
type responseWriter struct {
	st          *serverStream
	header      http.Header
	status      int
	wroteHeader bool
	// sentHeader: the HEADERS frame went out (at the first write, flush
	// or the end: a response with no body and no trailers ends in its
	// HEADERS, as gRPC's trailers-only answers must).
	sentHeader bool
	head       bool // a HEAD request: no body goes out
	declared   []string
	// trailerRoom backs finish's trailer list (the usual few, no allocation).
	trailerRoom [4]hpack.HeaderField
}

func (w *responseWriter) Header() http.Header { return w.header }

func (w *responseWriter) WriteHeader(code int) {
	if w.wroteHeader || w.st.aborted.Load() {
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		// Informational: sent at once, the final answer follows.
		w.sendHeaders(code, false, true)
		return
	}
	w.wroteHeader, w.status = true, code
	for _, v := range w.header["Trailer"] {
		for _, k := range strings.Split(v, ",") {
			if k = http.CanonicalHeaderKey(strings.TrimSpace(k)); k != "" {
				w.declared = append(w.declared, k)
			}
		}
	}
}

// sendHeader sends the response's HEADERS if they have not gone yet.
func (w *responseWriter) sendHeader(end, flush bool) {
	if w.sentHeader {
		return
	}
	w.sentHeader = true
	w.st.answered.Store(true)
	w.sendHeaders(w.status, end, flush)
}

// sendHeaders encodes and writes a HEADERS frame of the header map.
func (w *responseWriter) sendHeaders(code int, end, flush bool) {
	st := w.st
	sc := st.sc
	_ = sc.w.write(flush, func(fr *http2.Framer) error {
		block := sc.w.headerBlock(func(enc *hpackcodec.Encoder) {
			enc.WriteField(hpack.HeaderField{Name: ":status", Value: statusCode(code)})
			for k, vs := range w.header {
				if !sendableField(k) || slices.Contains(w.declared, k) {
					continue
				}
				name := lowerHeader(k)
				sensitive := st.respNeverIndexed.has(name)
				for _, v := range vs {
					if httpguts.ValidHeaderFieldValue(v) {
						enc.WriteField(hpack.HeaderField{Name: name, Value: v, Sensitive: sensitive})
					}
				}
			}
		})
		return writeHeaderBlock(fr, st.id, block, end, int(sc.frameSize()))
	})
}

// sendableField reports a response field HTTP/2 carries in HEADERS.
func sendableField(k string) bool {
	switch k {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "Trailer":
		return false
	}
	return !strings.HasPrefix(k, http.TrailerPrefix) && httpguts.ValidHeaderFieldName(k)
}

func (w *responseWriter) Write(p []byte) (int, error) {
	st := w.st
	if st.aborted.Load() {
		return 0, errStreamClosed
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.head || len(p) == 0 {
		return len(p), nil
	}
	w.sendHeader(false, false)
	sent := 0
	for sent < len(p) {
		k, err := st.takeWindow(len(p) - sent)
		if err != nil {
			return sent, err
		}
		chunk := p[sent : sent+k]
		if err := st.sc.w.write(false, func(fr *http2.Framer) error {
			st.sc.w.dataFrames.Add(1)
			return fr.WriteData(st.id, false, chunk)
		}); err != nil {
			return sent, err
		}
		sent += k
	}
	return sent, nil
}

// Flush sends what was written.
func (w *responseWriter) Flush() { _ = w.FlushError() }

// FlushError sends what was written (http.ResponseController's Flush).
func (w *responseWriter) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.st.aborted.Load() {
		return errStreamClosed
	}
	if !w.sentHeader {
		w.sendHeader(false, true)
		return nil
	}
	return w.st.sc.w.write(true, nil)
}

// finish ends the response when the handler returned: the trailers (the
// header's "Trailer:"-prefixed keys and the declared ones) or an empty
// DATA with END_STREAM, and the flush.
func (w *responseWriter) finish() {
	st := w.st
	if st.aborted.Load() {
		return
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	trailers := w.trailerRoom[:0]
	for k, vs := range w.header {
		name, ok := strings.CutPrefix(k, http.TrailerPrefix)
		if !ok {
			continue
		}
		for _, v := range vs {
			trailers = append(trailers, hpack.HeaderField{Name: lowerHeader(http.CanonicalHeaderKey(name)), Value: v})
		}
	}
	for _, k := range w.declared {
		for _, v := range w.header[k] {
			trailers = append(trailers, hpack.HeaderField{Name: lowerHeader(k), Value: v})
		}
	}
	sc := st.sc
	if !w.sentHeader {
		w.sendHeader(len(trailers) == 0, len(trailers) == 0)
		if len(trailers) == 0 {
			return // the HEADERS ended the stream
		}
	}
	_ = sc.w.write(true, func(fr *http2.Framer) error {
		if len(trailers) == 0 {
			return fr.WriteData(st.id, true, nil)
		}
		block := sc.w.headerBlock(func(enc *hpackcodec.Encoder) {
			for _, f := range trailers {
				if httpguts.ValidHeaderFieldName(f.Name) && httpguts.ValidHeaderFieldValue(f.Value) {
					f.Sensitive = st.respNeverIndexed.has(f.Name)
					enc.WriteField(f)
				}
			}
		})
		return writeHeaderBlock(fr, st.id, block, true, int(sc.frameSize()))
	})
}

// takeWindow waits until the stream and connection send windows let some
// of n bytes go and takes that much (at most a frame). What is queued is
// flushed before waiting (the client opens windows as it reads), and a
// window that stays shut for the write timeout fails the stream.
func (st *serverStream) takeWindow(n int) (int, error) {
	sc := st.sc
	sc.mu.Lock()
	flushed := false
	var deadline time.Time
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		switch {
		case st.aborted.Load():
			sc.mu.Unlock()
			return 0, errStreamClosed
		case sc.closed:
			sc.mu.Unlock()
			return 0, errors.New("h2: client connection closed")
		}
		if k := takeSend(&st.sendWindow, &sc.sendWindow, sc.maxFrame, int32(n)); k > 0 {
			sc.mu.Unlock()
			return int(k), nil
		}
		if !flushed {
			sc.mu.Unlock()
			_ = sc.w.write(true, nil)
			sc.mu.Lock()
			flushed = true
			continue
		}
		if timer == nil {
			timeout := sc.s.writeTimeout()
			deadline = time.Now().Add(timeout)
			timer = time.AfterFunc(timeout, func() {
				sc.mu.Lock()
				sc.cond.Broadcast()
				sc.mu.Unlock()
			})
		} else if !time.Now().Before(deadline) {
			sc.mu.Unlock()
			st.resetBy(http2.ErrCodeCancel)
			return 0, fmt.Errorf("h2: the client's flow-control window stayed shut for %s", sc.s.writeTimeout())
		}
		sc.cond.Wait()
	}
}

func statusCode(code int) string {
	if code == http.StatusOK {
		return "200"
	}
	return strconv.Itoa(code)
}

// plainPath: p is an absolute path that url.ParseRequestURI would take
// as it is (no query, no escapes, only characters a path keeps unescaped),
// so the URL is built without parsing it (gRPC's /package.Service/Method).
func plainPath(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	for i := 1; i < len(p); i++ {
		switch c := p[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '/' || c == '.' || c == '-' || c == '_' || c == '~':
		default:
			return false
		}
	}
	return true
}
