// Reference peer: a broadcast server on Node's `ws` package.
// Every text message a client sends is sent to every connected client (one
// shared frame), the same work heihei does for a room message. The first
// argument is the port; it prints "ready" when it listens.
const { WebSocketServer, WebSocket } = require('ws');

const port = parseInt(process.argv[2], 10);
const wss = new WebSocketServer({ host: '127.0.0.1', port, backlog: 4096, perMessageDeflate: false,
                                  maxPayload: 65536 });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    for (const client of wss.clients) {
      if (client.readyState === WebSocket.OPEN) client.send(data, { binary: isBinary });
    }
  });
});
wss.on('listening', () => console.log('ready'));
