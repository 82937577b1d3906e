// What tests/e2e/test_browser.py does in the page, through the official JS SDK only.
// Every step is a function on window.page that the test calls (tests/browser/drive.mjs);
// what the SDK reports is kept in `seen` and read back with page.state().
import { createConsoleLogger, createDecartClient } from "@decartai/sdk";

// The camera: four flat quadrants (clockwise from the top left), repainted at the model's
// rate, so the output can be read back by region.
export const QUADRANTS = [
  [40, 160, 90],
  [200, 60, 40],
  [230, 230, 230],
  [60, 90, 220],
];

const seen = { connection: [], queue: [], quality: [], errors: [], stats: null };
let config = null;
let account = null; // the account key's client: what a backend holds
let client = null; // a client token's client: what a page holds
let rt = null;
let viewer = null;
let painter = null;

function sdk(apiKey) {
  return createDecartClient({
    apiKey,
    baseUrl: config.restUrl,
    realtimeBaseUrl: config.emulatorUrl,
    telemetry: false, // the SDK would report to the service's host
    logger: createConsoleLogger("warn"),
  });
}

function paint(ctx, width, height, colours) {
  const w = width / 2;
  const h = height / 2;
  const at = [
    [0, 0],
    [w, 0],
    [w, h],
    [0, h],
  ];
  colours.forEach(([r, g, b], i) => {
    ctx.fillStyle = `rgb(${r}, ${g}, ${b})`;
    ctx.fillRect(at[i][0], at[i][1], w, h);
  });
}

function camera(width, height, fps) {
  const canvas = document.getElementById("camera");
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext("2d");
  paint(ctx, width, height, QUADRANTS);
  const stream = canvas.captureStream(fps);
  // A captured canvas makes a frame per repaint: repaint at the model's rate.
  painter = setInterval(() => paint(ctx, width, height, QUADRANTS), 1000 / fps);
  return stream;
}

function regionMean(data, width, x0, y0, x1, y1) {
  const sum = [0, 0, 0];
  let n = 0;
  for (let y = y0; y < y1; y++) {
    for (let x = x0; x < x1; x++) {
      const i = (y * width + x) * 4;
      sum[0] += data[i];
      sum[1] += data[i + 1];
      sum[2] += data[i + 2];
      n++;
    }
  }
  return sum.map((s) => Math.round((s / n) * 10) / 10);
}

async function flatPng(rgb, width = 64, height = 48) {
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  paint(canvas.getContext("2d"), width, height, [rgb, rgb, rgb, rgb]);
  return await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
}

window.page = {
  QUADRANTS,

  init(options) {
    config = options;
    account = sdk(options.accountKey);
    return true;
  },

  // A backend's step, done from the page: a client token for this page's origin.
  async createToken(options) {
    const token = await account.tokens.create(options);
    client = sdk(token.apiKey);
    return token;
  },

  async upload(rgb) {
    const ref = await client.files.upload(await flatPng(rgb), { ttlSeconds: 600 });
    const fetched = await client.files.get(ref.id);
    return { ...ref, fetched_id: fetched.id };
  },

  async connect(options) {
    const { width, height, fps } = config.model;
    const output = document.getElementById("output");
    rt = await client.realtime.connect(camera(width, height, fps), {
      model: { name: config.model.name, urlPath: "/v1/stream", fps, width, height },
      onRemoteStream: (stream) => {
        output.srcObject = stream;
        output.play().catch(() => {});
      },
      onConnectionChange: (state) => seen.connection.push(state),
      onQueuePosition: (position) => seen.queue.push(position),
      onConnectionQuality: (report) => seen.quality.push(report),
      ...options,
    });
    rt.on("error", (error) => seen.errors.push(String(error?.message ?? error)));
    rt.on("stats", (stats) => (seen.stats = stats));
    return { sessionId: rt.sessionId, state: rt.getConnectionState() };
  },

  // A viewer of the session, as the SDK's subscribe() makes one from its subscribe token.
  async subscribe() {
    const video = document.getElementById("viewer");
    viewer = await client.realtime.subscribe({
      token: rt.subscribeToken,
      onRemoteStream: (stream) => {
        video.srcObject = stream;
        video.play().catch(() => {});
      },
    });
    return viewer.isConnected();
  },

  async setPrompt(text) {
    await rt.setPrompt(text, { enhance: false }); // resolves on the service's ack
    return true;
  },

  async setImage(id) {
    await rt.set({ image: id }); // resolves on the service's ack
    return true;
  },

  // A video's pixels (the output's, or the viewer's): the mean of the middle half of each
  // quadrant.
  sample(id = "output") {
    const video = document.getElementById(id);
    const width = video.videoWidth;
    const height = video.videoHeight;
    if (!width || !height) return null;
    const canvas = document.getElementById("readback");
    canvas.width = width;
    canvas.height = height;
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(video, 0, 0, width, height);
    const data = ctx.getImageData(0, 0, width, height).data;
    const w = width / 2;
    const h = height / 2;
    const corners = [
      [0, 0],
      [w, 0],
      [w, h],
      [0, h],
    ];
    const quadrants = corners.map(([x, y]) =>
      regionMean(data, width, Math.round(x + w / 4), Math.round(y + h / 4),
        Math.round(x + (3 * w) / 4), Math.round(y + (3 * h) / 4)),
    );
    const frames = video.getVideoPlaybackQuality?.().totalVideoFrames ?? 0;
    return { width, height, quadrants, frames };
  },

  state() {
    const stats = seen.stats;
    return {
      ...seen,
      stats: stats && {
        availableOutgoingBitrate: stats.connection?.availableOutgoingBitrate ?? null,
        fps: stats.video?.framesPerSecond ?? null,
        outbound: stats.outboundVideo && {
          width: stats.outboundVideo.frameWidth,
          height: stats.outboundVideo.frameHeight,
          limitation: stats.outboundVideo.qualityLimitationReason,
          bitrate: stats.outboundVideo.bitrate,
        },
      },
      current: rt?.getConnectionState() ?? null,
      verdict: rt?.getConnectionQuality() ?? null,
      peers: (window.__peers ?? []).map((pc) => ({
        state: pc.connectionState,
        sends: pc.getTransceivers().some((t) => /send/.test(t.currentDirection ?? "")),
        receives: pc.getTransceivers().some((t) => /recv/.test(t.currentDirection ?? "")),
      })),
      sockets: window.__sockets ?? [],
    };
  },

  // Each peer connection's own figures: which one says what of the network.
  async peerStats() {
    const out = [];
    for (const pc of window.__peers ?? []) {
      const report = await pc.getStats();
      let pair = null;
      report.forEach((r) => {
        if (r.type === "candidate-pair" && r.state === "succeeded" && r.nominated) pair = r;
      });
      out.push({
        state: pc.connectionState,
        availableOutgoingBitrate: pair?.availableOutgoingBitrate ?? null,
        availableIncomingBitrate: pair?.availableIncomingBitrate ?? null,
      });
    }
    return out;
  },

  disconnect() {
    viewer?.disconnect();
    viewer = null;
    rt?.disconnect();
    rt = null;
    clearInterval(painter);
    return true;
  },
};
