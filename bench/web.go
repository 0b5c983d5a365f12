package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	demov1 "github.com/meshgate/meshgate/proto/demo/v1"
)

// grpcWebUnary calls Echo as a browser's gRPC-Web client does (binary,
// HTTP/1.1 keep-alive pool) through the gateway.
func grpcWebUnary(ctx context.Context, addr string, n int, warm, dur time.Duration) (result, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: n, MaxConnsPerHost: n, DisableCompression: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	msg, err := proto.Marshal(&demov1.EchoRequest{Message: "hello meshgate"})
	if err != nil {
		return result{}, err
	}
	frame := make([]byte, 5+len(msg))
	binary.BigEndian.PutUint32(frame[1:], uint32(len(msg)))
	copy(frame[5:], msg)
	url := "http://" + addr + "/demo.v1.DemoService/Echo"
	return measure(ctx, n, warm, dur, func(ctx context.Context) (int64, time.Duration, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(frame))
		req.Header.Set("Content-Type", "application/grpc-web+proto")
		req.Header.Set("X-Grpc-Web", "1")
		start := time.Now()
		resp, err := c.Do(req)
		if err != nil {
			return 0, 0, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && (resp.StatusCode != 200 || !bytes.Contains(body, []byte("grpc-status: 0"))) {
			err = fmt.Errorf("status %d, %q", resp.StatusCode, body)
		}
		return 1, time.Since(start), err
	}), nil
}

// restToGRPC posts the same call as JSON to the gateway's transcoder.
func restToGRPC(ctx context.Context, addr string, n int, warm, dur time.Duration) (result, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: n, MaxConnsPerHost: n, DisableCompression: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	url := "http://" + addr + "/demo.v1.DemoService/Echo"
	return measure(ctx, n, warm, dur, func(ctx context.Context) (int64, time.Duration, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(`{"message":"hello meshgate"}`))
		req.Header.Set("Content-Type", "application/json")
		start := time.Now()
		resp, err := c.Do(req)
		if err != nil {
			return 0, 0, err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode != 200 {
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		return 1, time.Since(start), err
	}), nil
}
