// ShareDB 7 with the rich-text type and its in-memory database, over a
// plain WebSocket server: the unencrypted peer of sealcast's documents in
// scripts/bench/docs-vs-peers.mjs. Prints "listening PORT".
'use strict';
const http = require('node:http');
const { Duplex } = require('node:stream');
const ShareDB = require('sharedb');
const richText = require('rich-text');
const WebSocket = require('ws');

ShareDB.types.register(richText.type);
const share = new ShareDB();

/** A WebSocket as the JSON object stream ShareDB's server reads. */
function jsonStream(ws) {
  const stream = new Duplex({
    objectMode: true,
    read() {},
    write(message, _encoding, done) {
      if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
      done();
    },
  });
  ws.on('message', (data) => stream.push(JSON.parse(data)));
  ws.on('close', () => { stream.push(null); stream.destroy(); });
  stream.on('error', () => ws.close());
  return stream;
}

const server = http.createServer();
new WebSocket.Server({ server }).on('connection', (ws) => share.listen(jsonStream(ws)));
server.listen(0, '127.0.0.1', () => console.log(`listening ${server.address().port}`));
