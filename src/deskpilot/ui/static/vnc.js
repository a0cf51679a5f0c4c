// The /vnc page: only the live view of one run (?run=ID). Input reaches the desktop only
// while a human holds the run's takeover lease (the server enforces it: deskpilot/ui/bridge.py);
// the page follows the run's takeover events to switch noVNC between view-only and control.
import { LiveView } from "/static/liveview.js";

const runId = new URLSearchParams(location.search).get("run") || "";
const status = document.getElementById("live-status");
const view = new LiveView(document.getElementById("screen"), (text) => {
  status.textContent = text;
});
view.connect(runId);

const events = new EventSource(`/api/runs/${encodeURIComponent(runId)}/events`);
events.addEventListener("takeover", (event) => {
  const data = JSON.parse(event.data);
  view.setControl(data.state === "held");
});
events.addEventListener("end", () => {
  events.close();
  view.disconnect();
  status.textContent = "The run has ended.";
});
