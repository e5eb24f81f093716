// A local upstream for the http-kind benchmarks (127.0.0.1 only).
//   GET /fast  -> 200 {"ok":true,"n":<counter>} at once
//   GET /tail  -> the same after 5 ms, or after 100 ms for 3 requests in 100 (p99 = 20 x median)
// Run: node upstream.js PORT
const http = require('http');
let n = 0;
http.createServer((req, res) => {
  const send = () => {
    const body = JSON.stringify({ ok: true, n: ++n });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };
  if (req.url.startsWith('/tail')) setTimeout(send, Math.random() < 0.03 ? 100 : 5);
  else send();
}).listen(+process.argv[2], '127.0.0.1');
