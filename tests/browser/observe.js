// Loaded before the SDK: keeps every peer connection the page makes and the path of every
// WebSocket it opens (never the query: it carries keys), so the test can tell which
// signaling path livekit-client took. Behaviour is unchanged: the originals do the work.
(() => {
  const peers = (window.__peers = []);
  const sockets = (window.__sockets = []);
  const Peer = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Peer {
    constructor(...args) {
      super(...args);
      peers.push(this);
    }
  };
  const Socket = window.WebSocket;
  window.WebSocket = class extends Socket {
    constructor(url, ...rest) {
      super(url, ...rest);
      sockets.push(new URL(url, location.href).pathname);
    }
  };
})();
