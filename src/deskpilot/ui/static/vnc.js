// The /vnc page: only the live view of one run (?run=ID), view-only unless a human holds
// the run's takeover lease (the server enforces it; see deskpilot/ui/bridge.py).
import { LiveView } from "/static/liveview.js";

const runId = new URLSearchParams(location.search).get("run") || "";
const status = document.getElementById("live-status");
const view = new LiveView(document.getElementById("screen"), (text) => {
  status.textContent = text;
});
view.connect(runId);
