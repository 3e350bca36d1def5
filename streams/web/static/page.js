// billstream operator page: the only script. Pages work without it; with it, a Replay
// button cannot be pressed twice and a replay's progress updates in place.
"use strict";

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!form.classList || !form.classList.contains("replay")) return;
  const button = form.querySelector("button");
  if (button) {
    // Disabled after the submit has been taken, so the form still posts.
    setTimeout(() => { button.disabled = true; button.textContent = "Replaying…"; }, 0);
  }
});

function followJob(box) {
  const id = box.dataset.job;
  const text = (name, value) => {
    const el = document.getElementById(name);
    if (el) el.textContent = String(value);
  };
  const tick = async () => {
    let job;
    try {
      const answer = await fetch(`/jobs/${id}.json`, { credentials: "same-origin" });
      if (!answer.ok) throw new Error(`HTTP ${answer.status}`);
      job = await answer.json();
    } catch (err) {
      setTimeout(tick, 2000);
      return;
    }
    text("job-state", job.state);
    text("job-sent", job.sent);
    text("job-total", job.total);
    text("job-attached", job.attached);
    text("job-failed", job.failed);
    text("job-pending", job.pending);
    const bar = document.getElementById("job-progress");
    if (bar) { bar.max = Math.max(job.total, 1); bar.value = job.attached + job.failed; }
    const rows = document.getElementById("job-items");
    if (rows) {
      rows.replaceChildren(...job.items.map((item) => {
        const tr = document.createElement("tr");
        tr.dataset.item = item.key;
        const link = document.createElement("a");
        link.href = `/item/${encodeURIComponent(item.key)}`;
        link.textContent = item.number;
        const cells = [link, item.supplier, item.outcome].map((content) => {
          const td = document.createElement("td");
          if (typeof content === "string") td.textContent = content; else td.append(content);
          return td;
        });
        cells[2].className = "outcome";
        tr.append(...cells);
        return tr;
      }));
    }
    if (job.finished) {
      box.dataset.finished = "yes";
      const done = document.getElementById("job-done");
      if (done && !job.error && job.total > 0) done.hidden = false;
      return;
    }
    setTimeout(tick, 1000);
  };
  tick();
}

document.addEventListener("DOMContentLoaded", () => {
  const box = document.getElementById("job");
  if (box && box.dataset.finished !== "yes") followJob(box);
});
