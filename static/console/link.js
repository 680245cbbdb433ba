/* The console's one websocket, for every module that sends. */
import { ReconnectingSocket } from "../chat/socket.js";

let socket = null;

export function connect(options) {
  socket = new ReconnectingSocket(options);
}

/** Send a frame now if the socket is open; false if it is not (nothing is queued). */
export function send(frame) {
  return socket?.send(frame) ?? false;
}
