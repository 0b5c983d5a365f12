// The page of meshgate's browser test: it calls the demo service through
// the gateway (another origin than the page's, so CORS preflights are
// real) with the official grpc-web client (text mode, unary and server
// streaming) and with connect-web (gRPC-Web binary and Connect), and a REST
// route with fetch(). Results go to window.__results for the driver.
import { fileDesc } from "@bufbuild/protobuf/codegenv2";
import { create, toBinary, fromBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { GrpcWebClientBase, MethodDescriptor, MethodType } from "grpc-web";

async function main() {
  const cfg = window.__MESHGATE; // { gateway: "http://host:port", desc: base64 FileDescriptorProto }
  const file = fileDesc(cfg.desc);
  const message = (name) => file.messages.find((m) => m.name === name);
  const EchoRequest = message("EchoRequest");
  const EchoResponse = message("EchoResponse");
  const ServerStreamRequest = message("ServerStreamRequest");
  const DemoService = file.services[0];
  const results = {};
  const run = async (name, fn) => {
    try {
      results[name] = { ok: true, value: await fn() };
    } catch (e) {
      results[name] = { ok: false, error: String((e && (e.message || e.code)) || e) };
    }
  };

  // The official grpc-web client, text mode (application/grpc-web-text).
  const gw = new GrpcWebClientBase({ format: "text" });
  const echo = new MethodDescriptor("/demo.v1.DemoService/Echo", MethodType.UNARY, Object, Object,
    (req) => toBinary(EchoRequest, req), (bytes) => fromBinary(EchoResponse, bytes));
  const stream = new MethodDescriptor("/demo.v1.DemoService/ServerStream", MethodType.SERVER_STREAMING, Object, Object,
    (req) => toBinary(ServerStreamRequest, req), (bytes) => fromBinary(EchoResponse, bytes));
  await run("grpcweb_text_unary", () => new Promise((resolve, reject) => {
    gw.rpcCall(cfg.gateway + "/demo.v1.DemoService/Echo", create(EchoRequest, { message: "grpc-web" }), {}, echo,
      (err, resp) => (err ? reject(err) : resolve(resp.message)));
  }));
  await run("grpcweb_text_stream", () => new Promise((resolve, reject) => {
    const got = [];
    const s = gw.serverStreaming(cfg.gateway + "/demo.v1.DemoService/ServerStream",
      create(ServerStreamRequest, { message: "s", count: 3n }), {}, stream);
    s.on("data", (r) => got.push(r.message));
    s.on("error", reject);
    s.on("end", () => resolve(got.length));
  }));

  // connect-web: its gRPC-Web transport (binary) and the Connect protocol.
  const transports = [
    ["connectweb_grpcweb", createGrpcWebTransport({ baseUrl: cfg.gateway, useBinaryFormat: true })],
    ["connectweb_connect", createConnectTransport({ baseUrl: cfg.gateway, useBinaryFormat: true })],
  ];
  for (const [name, transport] of transports) {
    const client = createClient(DemoService, transport);
    await run(name + "_unary", async () => (await client.echo({ message: name })).message);
    await run(name + "_stream", async () => {
      let n = 0;
      for await (const r of client.serverStream({ message: "s", count: 3n })) {
        if (r.message !== undefined) n++;
      }
      return n;
    });
  }

  // connect-web's Connect transport with the JSON codec (the gateway
  // transcodes with the listener's descriptors).
  const jsonClient = createClient(DemoService, createConnectTransport({ baseUrl: cfg.gateway, useBinaryFormat: false }));
  await run("connectweb_connect_json_unary", async () => (await jsonClient.echo({ message: "json" })).message);
  await run("connectweb_connect_json_stream", async () => {
    let n = 0;
    for await (const r of jsonClient.serverStream({ message: "s", count: 3n })) {
      if (r.message === "s") n++;
    }
    return n;
  });

  // A REST route.
  await run("fetch_rest", async () => {
    const r = await fetch(cfg.gateway + "/echo/browser");
    if (!r.ok) throw new Error("HTTP " + r.status);
    await r.json();
    return r.status;
  });

  window.__results = results;
  window.__done = true;
}

main().catch((e) => {
  window.__results = { page: { ok: false, error: String(e) } };
  window.__done = true;
});
