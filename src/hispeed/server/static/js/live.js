// Sockets that stay open: a WebSocket opened again a moment after it closes (the server
// restarted, the topic or table does not exist yet), for as long as the page is open.

import { wsUrl } from "./util.js";

const RETRY_MS = 3000;

export class LiveSocket {
  // `onOpen(socket)` runs on each connection (to send a query); `onMessage(data)` for each
  // message; `onState(open, why)` when the connection opens or closes.
  constructor(path, params, { onOpen = () => {}, onMessage, onState = () => {} }) {
    this.path = path;
    this.params = params;
    this.onOpen = onOpen;
    this.onMessage = onMessage;
    this.onState = onState;
    this.socket = null;
    this.connections = 0;
    this.connect();
  }

  connect() {
    const socket = new WebSocket(wsUrl(this.path, this.params));
    this.socket = socket;
    socket.addEventListener("open", () => {
      this.connections += 1;
      this.onState(true, "");
      this.onOpen(socket);
    });
    socket.addEventListener("message", (event) => this.onMessage(JSON.parse(event.data)));
    socket.addEventListener("close", (event) => {
      if (socket !== this.socket) return;
      this.onState(false, event.reason || `closed (${event.code})`);
      setTimeout(() => this.connect(), RETRY_MS);
    });
  }
}
