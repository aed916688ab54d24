#!/usr/bin/env node
// otlp_receiver.js: an OTLP/HTTP traces receiver for redline's tests. It
// decodes every request with the official generated types of
// @opentelemetry/otlp-transformer (pinned in package-lock.json):
//   - application/x-protobuf: ExportTraceServiceRequest.decode, then verify;
//   - application/json: OTLP/JSON rules (hex ids to bytes, decimal-string
//     int64 accepted), fromObject + verify, and a round trip through
//     toObject that refuses any field the schema does not define.
// Either way the request is kept in one normalised form (hex ids, int64 as
// decimal strings, enums as numbers) that GET /requests returns, so a test
// compares protobuf and JSON exports field by field. A bad request gets 400
// with the reason (and is recorded as an error).
//
//   node otlp_receiver.js [--port N]      prints "listening PORT" when ready
//   POST /control {"mode":"ok"|"503"}    answer normally, or 503 + Retry-After: 1
//   GET /requests                         what was received, in order
//   POST /reset                           forget it
"use strict";

const http = require("http");
const zlib = require("zlib");
const root = require("@opentelemetry/otlp-transformer/build/src/generated/root");

const Req = root.opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest;
const ID_FIELDS = new Set(["traceId", "spanId", "parentSpanId"]);
const TO_OBJECT = { longs: String, enums: Number, bytes: String, defaults: false, arrays: false };

let mode = "ok";
let received = [];
let errors = [];

// OTLP/JSON ids are hex (not proto3's base64): bytes for fromObject.
function hexIdsToBytes(v, key) {
  if (Array.isArray(v)) return v.map((x) => hexIdsToBytes(x, null));
  if (v && typeof v === "object") {
    const out = {};
    for (const [k, x] of Object.entries(v)) out[k] = hexIdsToBytes(x, k);
    return out;
  }
  if (ID_FIELDS.has(key) && typeof v === "string") {
    if (v === "") return Buffer.alloc(0);
    if (!/^[0-9a-fA-F]*$/.test(v) || v.length % 2) throw new Error(`${key} is not hex: ${v}`);
    return Buffer.from(v, "hex");
  }
  return v;
}

// Every key of the input must survive fromObject -> toObject (unknown fields vanish there).
function checkKnown(input, back, path) {
  if (Array.isArray(input)) {
    if (input.length === 0) return;
    if (!Array.isArray(back) || back.length !== input.length) throw new Error(`${path}: array lost`);
    input.forEach((x, i) => checkKnown(x, back[i], `${path}[${i}]`));
    return;
  }
  if (input && typeof input === "object" && !Buffer.isBuffer(input)) {
    for (const k of Object.keys(input)) {
      if (Array.isArray(input[k]) && input[k].length === 0) continue;
      if (!back || !(k in back)) throw new Error(`${path}.${k}: not a field of the schema`);
      checkKnown(input[k], back[k], `${path}.${k}`);
    }
  }
}

// base64 ids (toObject's bytes) back to lowercase hex.
function normalise(v, key) {
  if (Array.isArray(v)) return v.map((x) => normalise(x, null));
  if (v && typeof v === "object") {
    const out = {};
    for (const [k, x] of Object.entries(v)) out[k] = normalise(x, k);
    return out;
  }
  if (ID_FIELDS.has(key) && typeof v === "string") return Buffer.from(v, "base64").toString("hex");
  return v;
}

function decode(body, type) {
  if (type.startsWith("application/x-protobuf")) {
    const msg = Req.decode(body);
    const err = Req.verify(msg);
    if (err) throw new Error(`verify: ${err}`);
    return normalise(Req.toObject(msg, TO_OBJECT), null);
  }
  if (type.startsWith("application/json")) {
    const input = hexIdsToBytes(JSON.parse(body.toString("utf8")), null);
    const msg = Req.fromObject(input);
    const err = Req.verify(msg);
    if (err) throw new Error(`verify: ${err}`);
    const back = Req.toObject(msg, { ...TO_OBJECT, bytes: Buffer });
    checkKnown(input, back, "ExportTraceServiceRequest");
    return normalise(Req.toObject(msg, TO_OBJECT), null);
  }
  throw new Error(`unsupported Content-Type: ${type}`);
}

function reply(res, status, type, body, extra) {
  res.writeHead(status, { "Content-Type": type, "Content-Length": Buffer.byteLength(body), ...(extra || {}) });
  res.end(body);
}

function onTraces(req, res, body) {
  const type = (req.headers["content-type"] || "").toLowerCase();
  const json = type.startsWith("application/json");
  if (mode === "503") {
    const b = json ? '{"code":14,"message":"unavailable"}' : "";
    reply(res, 503, json ? "application/json" : "application/x-protobuf", b, { "Retry-After": "1" });
    received.push({ refused: 503 });
    return;
  }
  try {
    if ((req.headers["content-encoding"] || "") === "gzip") body = zlib.gunzipSync(body);
    const decoded = decode(body, type);
    received.push({ contentType: type, gzip: req.headers["content-encoding"] === "gzip",
                    headers: req.headers, request: decoded });
    if (json) reply(res, 200, "application/json", "{}");
    else reply(res, 200, "application/x-protobuf", "");
  } catch (e) {
    errors.push(String(e.message || e));
    reply(res, 400, json ? "application/json" : "text/plain", JSON.stringify({ message: String(e.message || e) }));
  }
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks);
    if (req.method === "POST" && req.url === "/v1/traces") return onTraces(req, res, body);
    if (req.method === "POST" && req.url === "/control") {
      mode = JSON.parse(body.toString("utf8")).mode;
      return reply(res, 200, "application/json", JSON.stringify({ mode }));
    }
    if (req.method === "POST" && req.url === "/reset") {
      received = [];
      errors = [];
      return reply(res, 200, "application/json", "{}");
    }
    if (req.method === "GET" && req.url === "/requests")
      return reply(res, 200, "application/json", JSON.stringify({ received, errors }));
    reply(res, 404, "text/plain", "not found\n");
  });
});

const i = process.argv.indexOf("--port");
const port = i > 0 ? Number(process.argv[i + 1]) : 0;
server.listen(port, "127.0.0.1", () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
