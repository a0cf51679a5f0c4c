// The live view: noVNC's RFB client (Debian's novnc, served at /novnc/) on the app's
// /websockify bridge. The bridge logs in to x11vnc itself, so no password is needed here,
// and it drops keyboard and mouse input unless the run is taken over; `setControl` only
// mirrors that in the page (noVNC's viewOnly) so the canvas takes focus and clicks.
import RFB from "/novnc/core/rfb.js";

export class LiveView {
  constructor(container, onStatus) {
    this.container = container;
    this.onStatus = onStatus || (() => {});
    this.rfb = null;
    this.runId = null;
    this.control = false;
    this.retry = null;
  }

  connect(runId) {
    if (this.runId === runId && this.rfb) return;
    this.disconnect();
    this.runId = runId;
    if (!runId) return;
    const url = new URL("/websockify?run=" + encodeURIComponent(runId), location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    const rfb = new RFB(this.container, url.href, { shared: true });
    rfb.scaleViewport = true;
    rfb.resizeSession = false;
    rfb.viewOnly = !this.control;
    rfb.focusOnClick = this.control;
    rfb.addEventListener("connect", () => {
      const canvas = this.canvas();
      // The view takes the desktop's shape (noVNC scales it into the container).
      if (canvas && canvas.width && canvas.height) this.container.style.aspectRatio = `${canvas.width} / ${canvas.height}`;
      this.onStatus(this.control ? "Live: you have control" : "Live (view only)");
    });
    rfb.addEventListener("disconnect", () => {
      if (this.rfb !== rfb) return;
      this.rfb = null;
      this.onStatus("Live view disconnected; reconnecting…");
      const id = this.runId;
      this.retry = setTimeout(() => { if (this.runId === id) { this.runId = null; this.connect(id); } }, 1000);
    });
    this.rfb = rfb;
    this.onStatus("Connecting…");
  }

  setControl(on) {
    this.control = on;
    if (this.rfb) {
      this.rfb.viewOnly = !on;
      this.rfb.focusOnClick = on;
      if (on) this.rfb.focus();
      this.onStatus(on ? "Live: you have control" : "Live (view only)");
    }
  }

  disconnect() {
    clearTimeout(this.retry);
    const rfb = this.rfb;
    this.rfb = null;
    this.runId = null;
    if (rfb) rfb.disconnect();
  }

  canvas() {
    return this.container.querySelector("canvas");
  }
}
