package h2

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/meshgate/meshgate/server/h2/hpackcodec"
)

// maxStreamID is the last stream id a client may use.
const maxStreamID = 1<<31 - 1

// errBodyClosed is what reading a response body after Close returns.
var errBodyClosed = errors.New("h2: response body closed")

// clientStream is one request and its response.
type clientStream struct {
	cc  *clientConn
	id  uint32
	req *http.Request
	// respReady is closed when the response headers came (resp) or the
	// stream failed first (err).
	respReady chan struct{}
	resp      *http.Response
	respBody  responseBody // resp's Body (in the stream: one allocation less)
	err       error
	stopCtx   func() bool
	aborted   atomic.Bool

	// sendWindow is the stream's send window (under cc.mu).
	sendWindow int32

	mu          sync.Mutex
	cond        sync.Cond // data or the end of the response arrived
	headersDone bool
	// reqDone: END_STREAM was (or is being) sent, or the request side is
	// over otherwise; respDone: the response ended or the stream failed.
	reqDone, respDone bool
	// The response body not read yet, and the reader's error once there
	// is no more (io.EOF at the end).
	buf  dataBuffer
	rerr error
	// recv is the stream's receive window.
	recv recvFlow
}

// BufferedBody is a request body that can tell, without blocking, how
// much it holds and whether that is all of it: a body complete when the
// request is sent (a unary call's) goes with the HEADERS in one write,
// without a goroutine to stream it. meshgate's HTTP/2 server's request
// bodies are, and the gateway's body wrappers pass it on.
type BufferedBody interface {
	Buffered() (n int, complete bool)
}

// maxInlineBody is the largest complete body sent with the HEADERS.
const maxInlineBody = 16 << 10

// takeInline reads a small request body that is already complete (its
// reads cannot block), to be sent with the HEADERS; the rest of the time
// it returns (nil, body) and the body streams. done gives the buffer back.
func takeInline(req *http.Request) (inline []byte, body io.ReadCloser, done func(), err error) {
	body = req.Body
	if body == http.NoBody {
		body = nil
	}
	bb, ok := body.(BufferedBody)
	if !ok || len(req.Trailer) > 0 {
		return nil, body, func() {}, nil
	}
	n, complete := bb.Buffered()
	if !complete || n > maxInlineBody {
		return nil, body, func() {}, nil
	}
	bp := bodyBufPool.Get().(*[]byte)
	buf := (*bp)[:0]
	for err == nil {
		var k int
		if len(buf) == cap(buf) {
			var one [1]byte // full: only its end may follow
			if k, err = body.Read(one[:]); k > 0 {
				err = nil
				break
			}
			continue
		}
		k, err = body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+k]
	}
	_ = body.Close()
	if err != io.EOF {
		bodyBufPool.Put(bp)
		if err == nil {
			err = errors.New("h2: request body longer than it said it was")
		}
		return nil, nil, nil, fmt.Errorf("h2: reading the request body: %w", err)
	}
	return buf, nil, func() { bodyBufPool.Put(bp) }, nil
}

// roundTrip opens a stream for req on a connection reserve() booked;
// body streams after the HEADERS, or inline (when not nil) goes with them.
func (cc *clientConn) roundTrip(req *http.Request, body io.ReadCloser, inline []byte) (*http.Response, error) {
	cs := &clientStream{cc: cc, req: req, respReady: make(chan struct{}), recv: recvFlow{avail: cc.t.streamWindow()}}
	cs.cond.L = &cs.mu
	// The request side is done at once without a body, or with one sent
	// inline (decided below, before the stream is seen by the read loop).
	cs.reqDone = body == nil && inline == nil
	sendInline := false

	// The stream id is taken under the writer's lock, so that ids go out
	// in order; a connection that closed, is going away or ran out of ids
	// since reserve() opens nothing (RoundTrip tries another).
	opened := false
	err := cc.w.write(true, func(fr *http2.Framer) error {
		cc.mu.Lock()
		id := cc.nextID.Load()
		if cc.closed || cc.goAway || id > maxStreamID {
			if id > maxStreamID {
				cc.goAway = true // out of ids: a new connection takes the next ones
			}
			cc.mu.Unlock()
			return nil
		}
		opened = true
		cc.nextID.Store(id + 2)
		cs.id, cs.sendWindow = id, cc.initialWindow
		maxFrame := int(cc.maxFrame)
		if k := int32(len(inline)); inline != nil && k <= cs.sendWindow && k <= cc.sendWindow && int(k) <= maxFrame {
			cs.sendWindow -= k
			cc.sendWindow -= k
			sendInline, cs.reqDone = true, true
		}
		cc.streams[id] = cs
		cc.reserved--
		cc.mu.Unlock()
		head := requestHead(req)
		block := cc.w.headerBlock(func(enc *hpackcodec.Encoder) { encodeRequestHeaders(enc, &head) })
		endInHeaders := (body == nil && inline == nil) || (sendInline && len(inline) == 0)
		err := writeHeaderBlock(fr, id, block, endInHeaders, maxFrame)
		if err == nil && sendInline && len(inline) > 0 {
			err = fr.WriteData(id, true, inline)
		}
		return err
	})
	if !opened {
		cc.mu.Lock()
		cc.reserved--
		cc.maybeIdleLocked()
		cc.mu.Unlock()
		return nil, errConnUnusable
	}
	if err != nil {
		cs.abort(err, false)
		if body != nil {
			_ = body.Close()
		}
		return nil, err
	}

	ctx := req.Context()
	cs.mu.Lock()
	if !cs.aborted.Load() {
		cs.stopCtx = context.AfterFunc(ctx, func() {
			cs.abort(fmt.Errorf("h2: request canceled: %w", context.Cause(ctx)), true)
		})
	}
	cs.mu.Unlock()
	switch {
	case body != nil:
		go cs.writeBody(body)
	case inline != nil && !sendInline:
		// Complete but over the window: streamed as any body.
		go cs.writeBody(io.NopCloser(bytes.NewReader(bytes.Clone(inline))))
	}
	<-cs.respReady
	if cs.resp == nil {
		return nil, cs.err
	}
	return cs.resp, nil
}

// writeBody sends the request body as DATA within the send windows, then
// its trailers or END_STREAM.
func (cs *clientStream) writeBody(body io.ReadCloser) {
	cc := cs.cc
	defer body.Close()
	bp := bodyBufPool.Get().(*[]byte)
	defer bodyBufPool.Put(bp)
	buf := *bp
	for {
		n, rerr := body.Read(buf)
		if rerr != nil && rerr != io.EOF {
			cs.abort(fmt.Errorf("h2: reading the request body: %w", rerr), true)
			return
		}
		end := rerr == io.EOF
		data := buf[:n]
		for len(data) > 0 {
			k := cs.awaitSendWindow(len(data))
			if k == 0 {
				return // aborted
			}
			last := end && k == len(data) && len(cs.req.Trailer) == 0
			if last && !cs.markReqDone() {
				return
			}
			chunk := data[:k]
			if err := cc.w.write(true, func(fr *http2.Framer) error { return fr.WriteData(cs.id, last, chunk) }); err != nil {
				cs.abort(err, false)
				return
			}
			data = data[k:]
			if last {
				cs.finishIfDone()
				return
			}
		}
		if !end {
			continue
		}
		if !cs.markReqDone() {
			return
		}
		var err error
		if len(cs.req.Trailer) > 0 {
			err = cc.w.write(true, func(fr *http2.Framer) error {
				block := cc.w.headerBlock(func(enc *hpackcodec.Encoder) {
					for k, vs := range cs.req.Trailer {
						for _, v := range vs {
							enc.WriteField(hpack.HeaderField{Name: lowerHeader(k), Value: v})
						}
					}
				})
				return writeHeaderBlock(fr, cs.id, block, true, int(cc.frameSize()))
			})
		} else {
			err = cc.w.write(true, func(fr *http2.Framer) error { return fr.WriteData(cs.id, true, nil) })
		}
		if err != nil {
			cs.abort(err, false)
			return
		}
		cs.finishIfDone()
		return
	}
}

var bodyBufPool = sync.Pool{New: func() any { b := make([]byte, 16384); return &b }}

func (cc *clientConn) frameSize() uint32 {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.maxFrame
}

// awaitSendWindow waits until the stream and connection windows let some
// of n bytes go, takes that much (at most a frame) and returns it; 0 when
// the stream ended meanwhile.
func (cs *clientStream) awaitSendWindow(n int) int {
	cc := cs.cc
	cc.mu.Lock()
	defer cc.mu.Unlock()
	for {
		if cs.aborted.Load() || cc.closed {
			return 0
		}
		if k := takeSend(&cs.sendWindow, &cc.sendWindow, cc.maxFrame, int32(n)); k > 0 {
			return int(k)
		}
		cc.cond.Wait()
	}
}

// markReqDone notes that END_STREAM is about to be sent; false when the
// stream already ended (nothing more is to be sent).
func (cs *clientStream) markReqDone() bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.aborted.Load() || cs.reqDone {
		return false
	}
	cs.reqDone = true
	return true
}

// finishIfDone forgets the stream once both sides ended.
func (cs *clientStream) finishIfDone() {
	cs.mu.Lock()
	done := cs.reqDone && cs.respDone && !cs.aborted.Load()
	cs.mu.Unlock()
	if done {
		cs.release()
	}
}

// release forgets a finished stream and its context watch.
func (cs *clientStream) release() {
	cs.cc.forgetStream(cs)
	cs.mu.Lock()
	stop := cs.stopCtx
	cs.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// abort ends the stream with err: a response not come yet fails with it, a
// body being read too. sendRST resets the stream at the server (CANCEL,
// or err's code when it is a StreamError) unless both sides had ended.
func (cs *clientStream) abort(err error, sendRST bool) {
	cs.mu.Lock()
	if cs.aborted.Load() || (cs.reqDone && cs.respDone) {
		cs.mu.Unlock()
		return
	}
	cs.aborted.Store(true)
	if !cs.headersDone {
		cs.headersDone, cs.err = true, err
		close(cs.respReady)
	}
	// What came before stays readable, then err (as x/net's pipe does).
	if !cs.respDone {
		cs.rerr = err
	} else if cs.rerr == nil {
		cs.rerr = io.EOF
	}
	reqOpen := !cs.reqDone
	cs.reqDone, cs.respDone = true, true
	cs.cond.Broadcast()
	cs.mu.Unlock()

	cc := cs.cc
	if sendRST && cs.id != 0 {
		code := http2.ErrCodeCancel
		var se http2.StreamError
		if errors.As(err, &se) {
			code = se.Code
		}
		_ = cc.w.write(true, func(fr *http2.Framer) error { return fr.WriteRSTStream(cs.id, code) })
	}
	if reqOpen && cs.req.Body != nil && cs.req.Body != http.NoBody {
		// Wakes the body writer if it waits for the client.
		_ = cs.req.Body.Close()
	}
	cs.release()
}

// onHeaders takes the response headers, or the trailers.
func (cs *clientStream) onHeaders(f *http2.MetaHeadersFrame) {
	cs.mu.Lock()
	if cs.aborted.Load() {
		cs.mu.Unlock()
		return
	}
	if !cs.headersDone {
		code, err := strconv.Atoi(f.PseudoValue("status"))
		if err != nil || code < 100 || code > 999 {
			cs.mu.Unlock()
			cs.abort(http2.StreamError{StreamID: cs.id, Code: http2.ErrCodeProtocol, Cause: errors.New("malformed :status")}, true)
			return
		}
		if code < 200 && code != 101 {
			// An interim answer (100 Continue, 103 Early Hints): the
			// final one follows.
			cs.mu.Unlock()
			return
		}
		noteNeverIndexed(cs.req.Context(), f.RegularFields())
		resp := &http.Response{
			Status: statusText(code), StatusCode: code, Proto: "HTTP/2.0", ProtoMajor: 2,
			Header: responseHeader(f.RegularFields()), Request: cs.req, ContentLength: -1,
		}
		if cl := resp.Header["Content-Length"]; len(cl) == 1 {
			if n, err := strconv.ParseInt(cl[0], 10, 64); err == nil && n >= 0 {
				resp.ContentLength = n
			}
		}
		if f.StreamEnded() {
			resp.Body, resp.ContentLength = http.NoBody, 0
			cs.respDone, cs.rerr = true, io.EOF
		} else {
			cs.respBody.cs = cs
			resp.Body = &cs.respBody
		}
		cs.resp, cs.headersDone = resp, true
		close(cs.respReady)
	} else {
		if !f.StreamEnded() || cs.respDone {
			cs.mu.Unlock()
			cs.abort(http2.StreamError{StreamID: cs.id, Code: http2.ErrCodeProtocol, Cause: errors.New("trailers without END_STREAM")}, true)
			return
		}
		noteNeverIndexed(cs.req.Context(), f.RegularFields())
		if cs.resp.Trailer == nil {
			cs.resp.Trailer = responseHeader(f.RegularFields())
		} else {
			addFields(cs.resp.Trailer, f.RegularFields())
		}
		cs.respDone, cs.rerr = true, io.EOF
		cs.cond.Broadcast()
	}
	cs.afterRespEndLocked()
}

// afterRespEndLocked (cs.mu held; releases it) finishes a stream whose
// response ended: forgotten when the request ended too, else the server
// answered before the whole request: the rest is not sent (reset CANCEL).
func (cs *clientStream) afterRespEndLocked() {
	if !cs.respDone {
		cs.mu.Unlock()
		return
	}
	reqOpen := !cs.reqDone
	cs.mu.Unlock()
	if !reqOpen {
		cs.release()
		return
	}
	cs.cancelRequest()
}

// cancelRequest stops sending a request whose response is complete.
func (cs *clientStream) cancelRequest() {
	cs.mu.Lock()
	if cs.reqDone {
		cs.mu.Unlock()
		return
	}
	cs.reqDone = true
	cs.aborted.Store(true) // stops the body writer; the response stays readable
	cs.mu.Unlock()
	cc := cs.cc
	cc.mu.Lock()
	cc.cond.Broadcast()
	cc.mu.Unlock()
	_ = cc.w.write(true, func(fr *http2.Framer) error { return fr.WriteRSTStream(cs.id, http2.ErrCodeCancel) })
	if cs.req.Body != nil && cs.req.Body != http.NoBody {
		_ = cs.req.Body.Close()
	}
	cs.release()
}

// onData takes response body bytes (pad: padding bytes already given
// back to the connection window).
func (cs *clientStream) onData(data []byte, pad int32, end bool) {
	n := int32(len(data)) + pad
	cs.mu.Lock()
	if cs.aborted.Load() || cs.respDone || !cs.headersDone {
		bad := !cs.headersDone
		cs.mu.Unlock()
		cs.cc.consumed(int32(len(data)))
		if bad {
			cs.abort(http2.StreamError{StreamID: cs.id, Code: http2.ErrCodeProtocol, Cause: errors.New("DATA before HEADERS")}, true)
		}
		return
	}
	if !cs.recv.take(n) {
		cs.mu.Unlock()
		cs.cc.consumed(int32(len(data)))
		cs.abort(http2.StreamError{StreamID: cs.id, Code: http2.ErrCodeFlowControl}, true)
		return
	}
	if len(data) > 0 {
		cs.buf.Write(data)
	}
	if end {
		cs.respDone, cs.rerr = true, io.EOF
	}
	cs.cond.Broadcast()
	cs.afterRespEndLocked()
}

// responseBody reads a stream's response body.
type responseBody struct{ cs *clientStream }

func (b *responseBody) Read(p []byte) (int, error) {
	cs := b.cs
	cs.mu.Lock()
	for cs.buf.Len() == 0 && cs.rerr == nil {
		cs.cond.Wait()
	}
	if cs.buf.Len() == 0 {
		err := cs.rerr
		cs.mu.Unlock()
		return 0, err
	}
	if len(p) == 0 {
		cs.mu.Unlock()
		return 0, nil
	}
	n := cs.buf.Read(p)
	var add int32
	if !cs.respDone { // after its end, no more window is wanted
		add = cs.recv.consumed(int32(n), cs.cc.t.streamWindow())
	}
	cs.mu.Unlock()
	cs.cc.consumed(int32(n))
	if add > 0 {
		_ = cs.cc.w.write(true, func(fr *http2.Framer) error { return fr.WriteWindowUpdate(cs.id, uint32(add)) })
	}
	return n, nil
}

// Buffered is what a Read has at hand without waiting: n bytes, and
// complete once the whole body is in (see BufferedBody).
func (b *responseBody) Buffered() (n int, complete bool) {
	cs := b.cs
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.buf.Len(), cs.rerr == io.EOF
}

// Close discards what was not read; a response not read to its end
// resets the stream.
func (b *responseBody) Close() error {
	cs := b.cs
	cs.mu.Lock()
	unread := int32(cs.buf.Len())
	cs.buf.Reset()
	finished := cs.respDone && cs.reqDone
	respEnded := cs.respDone
	if cs.rerr == nil || cs.rerr == io.EOF {
		cs.rerr = errBodyClosed
	}
	cs.mu.Unlock()
	cs.cc.consumed(unread)
	switch {
	case finished:
	case respEnded:
		cs.cancelRequest()
	default:
		cs.abort(errBodyClosed, true)
	}
	return nil
}

// validHeaders refuses what HTTP/2 cannot carry, before a stream id is
// spent on it.
func validHeaders(req *http.Request) error {
	for k, vs := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return fmt.Errorf("h2: invalid header field name %q", k)
		}
		for _, v := range vs {
			if !httpguts.ValidHeaderFieldValue(v) {
				return fmt.Errorf("h2: invalid header field value for %q", k)
			}
		}
	}
	for k := range req.Trailer {
		if !httpguts.ValidHeaderFieldName(k) {
			return fmt.Errorf("h2: invalid trailer field name %q", k)
		}
	}
	if req.Method != "" && !httpguts.ValidHeaderFieldName(req.Method) {
		return fmt.Errorf("h2: invalid method %q", req.Method)
	}
	return nil
}

// RequestHead is what a request's header block carries: its
// pseudo-headers and header fields (hop-by-hop fields are not sent).
type RequestHead struct {
	Method, Scheme, Authority, Path string
	Header                          http.Header
	ContentLength                   int64 // > 0: sent as content-length
	// NeverIndexed names (lower-case) the fields to send as literals never
	// indexed, as the client sent them (NeverIndexed of its context).
	NeverIndexed []string
}

// requestHead is req's head as sent upstream.
func requestHead(req *http.Request) RequestHead {
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	return RequestHead{Method: req.Method, Scheme: req.URL.Scheme, Authority: host,
		Path: req.URL.RequestURI(), Header: req.Header, ContentLength: req.ContentLength,
		NeverIndexed: NeverIndexed(req.Context())}
}

// encodeRequestHeaders writes a request's header block: pseudo-headers,
// then its fields lower-cased, without the hop-by-hop ones.
func encodeRequestHeaders(enc *hpackcodec.Encoder, h *RequestHead) {
	method := cmp.Or(h.Method, http.MethodGet)
	scheme := cmp.Or(h.Scheme, "http")
	enc.WriteField(hpack.HeaderField{Name: ":authority", Value: h.Authority})
	enc.WriteField(hpack.HeaderField{Name: ":method", Value: method})
	enc.WriteField(hpack.HeaderField{Name: ":path", Value: h.Path})
	enc.WriteField(hpack.HeaderField{Name: ":scheme", Value: scheme})
	for k, vs := range h.Header {
		switch k {
		case "Host", "Content-Length", "Connection", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "Keep-Alive":
			continue
		case "Te":
			if len(vs) > 0 && vs[0] == "trailers" {
				enc.WriteField(hpack.HeaderField{Name: "te", Value: "trailers"})
			}
			continue
		}
		name := lowerHeader(k)
		sensitive := len(h.NeverIndexed) > 0 && slices.Contains(h.NeverIndexed, name)
		for _, v := range vs {
			enc.WriteField(hpack.HeaderField{Name: name, Value: v, Sensitive: sensitive})
		}
	}
	if h.ContentLength > 0 {
		enc.WriteField(hpack.HeaderField{Name: "content-length", Value: strconv.FormatInt(h.ContentLength, 10)})
	}
}

func statusText(code int) string {
	if code == http.StatusOK {
		return "200 OK"
	}
	return strconv.Itoa(code) + " " + http.StatusText(code)
}

func responseHeader(fields []hpack.HeaderField) http.Header {
	h := make(http.Header, len(fields))
	addFields(h, fields)
	return h
}

// addFields adds decoded fields to h, their values in one backing array
// (the usual one value per name).
func addFields(h http.Header, fields []hpack.HeaderField) {
	vals := make([]string, len(fields))
	for i, hf := range fields {
		addField(h, vals, i, canonicalHeader(hf.Name), hf.Value)
	}
}

// addField adds v under k, in vals[i] when k is new (capped there, so a
// second value for k appends elsewhere).
func addField(h http.Header, vals []string, i int, k, v string) {
	if old, ok := h[k]; ok {
		h[k] = append(old, v)
		return
	}
	vals[i] = v
	h[k] = vals[i : i+1 : i+1]
}
