/* New slide (/slides/new): name the slide, then upload photos or zips and watch them screened.
   /slides/new?slide=ID adds photos to an existing slide. */
"use strict";

(() => {
  const { el } = MC;
  const MAX_PARALLEL = 3;
  const POLL_MS = 500;
  const PENDING = new Set(["queued", "screening"]);
  const STATE_TEXT = {
    queued: "queued", screening: "screening", done: "done", failed: "failed", referred: "referred",
  };

  const form = document.getElementById("new-slide-form");
  const nameInput = document.getElementById("slide-name");
  const section = document.getElementById("upload-section");
  const title = document.getElementById("page-title");
  const uploadTitle = document.getElementById("upload-title");
  const dropzone = document.getElementById("dropzone");
  const fileInput = document.getElementById("files");
  const table = document.getElementById("photos");
  const rowsBody = document.getElementById("photo-rows");
  const status = document.getElementById("upload-status");
  const summaryBox = document.getElementById("summary");
  const limitsHint = document.getElementById("limits");

  let slide = null;            // the Slide being filled
  const rows = new Map();      // photo id -> <tr>
  const queue = [];            // upload jobs not started
  let active = 0;              // uploads in flight
  let uploadSeq = 0;
  let pollTimer = null;
  let lastStatus = "";

  /* ---- the slide ---- */
  function startSlide(s) {
    slide = s;
    form.hidden = true;
    section.hidden = false;
    title.textContent = s.name;
    uploadTitle.textContent = "Add photos";
    document.title = `Slide ${s.name} · malaria-cnn`;
    document.getElementById("slide-link").href = `/slides/${s.id}`;
    document.getElementById("review-link").href = `/slides/${s.id}/review`;
    history.replaceState(null, "", `/slides/new?slide=${encodeURIComponent(s.id)}`);
    fileInput.focus();
    pump();
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const button = document.getElementById("create-slide");
    button.disabled = true;
    try {
      const created = await MC.api("POST", "/api/slides", { name: nameInput.value.trim() });
      MC.clearError();
      startSlide(created);
      applySlide(created);
    } catch (_) {
      nameInput.focus();
    } finally {
      button.disabled = false;
    }
  });

  /* ---- rows ---- */
  function progressFor(state, name) {
    const bar = el("progress", { max: "1", "aria-label": `${name}: ${state}` });
    if (state === "screening") bar.removeAttribute("value");
    else bar.value = state === "queued" ? 0 : 1;
    return bar;
  }

  function resultText(photo) {
    switch (photo.state) {
      case "done": return `${MC.count(photo.cells_total ?? 0, "cell")}, ${photo.called ?? 0} called parasitized`;
      case "failed": return photo.error || "failed";
      case "referred": return `Referred: ${photo.referred || "not counted"}`;
      case "screening": return "finding and calling the cells…";
      default: return "waiting for the screener";
    }
  }

  function fillPhotoRow(tr, photo) {
    tr.className = `photo-row state-${photo.state}`;
    tr.dataset.photoId = photo.id;
    tr.dataset.state = photo.state;
    const name = photo.name || `photo ${photo.id}`;
    const stateCell = el("td", { class: "state" }, el("span", { class: `state-label state-${photo.state}`, text: STATE_TEXT[photo.state] || photo.state }));
    tr.replaceChildren(
      el("th", { scope: "row", class: "file-name", text: name }),
      el("td", {}, progressFor(photo.state, name)),
      stateCell,
      el("td", { class: "result", text: resultText(photo) }));
  }

  function photoRow(photo) {
    let tr = rows.get(photo.id);
    if (!tr) {
      tr = el("tr");
      rows.set(photo.id, tr);
      tr.dataset.state = "";
    }
    if (tr.dataset.state !== photo.state || tr.dataset.result !== resultText(photo)) {
      fillPhotoRow(tr, photo);
      tr.dataset.result = resultText(photo);
    }
    return tr;
  }

  function uploadRow(file) {
    const id = ++uploadSeq;
    const bar = el("progress", { max: "100", value: "0", "aria-label": `${file.name}: upload` });
    const stateText = el("span", { class: "state-label state-uploading", text: "waiting to upload" });
    const result = el("td", { class: "result" });
    const tr = el("tr", { class: "upload-row", dataset: { uploadId: id, uploadState: "waiting" } },
      el("th", { scope: "row", class: "file-name", text: file.name }),
      el("td", {}, bar),
      el("td", { class: "state" }, stateText),
      result);
    return { id, file, tr, bar, stateText, result };
  }

  /* ---- uploads ---- */
  function addFiles(files) {
    // files chosen before the slide exists (its creation still on its way) wait in the queue for it
    for (const file of files) {
      const job = uploadRow(file);
      rowsBody.append(job.tr);
      queue.push(job);
    }
    table.hidden = rowsBody.children.length === 0;
    pump();
    updateStatus();
  }

  function pump() {
    while (slide && active < MAX_PARALLEL && queue.length) start(queue.shift());
  }

  async function start(job) {
    active += 1;
    job.tr.dataset.uploadState = "uploading";
    job.stateText.textContent = "uploading 0%";
    const form = new FormData();
    form.append("files", job.file, job.file.name);
    try {
      const reply = await MC.upload(`/api/slides/${slide.id}/photos`, form, (fraction) => {
        const p = Math.round(fraction * 100);
        job.bar.value = p;
        job.stateText.textContent = p >= 100 ? "checking…" : `uploading ${p}%`;
      });
      const photos = reply.photos || [];
      for (const photo of photos) job.tr.before(photoRow(photo));
      job.tr.remove();
      if (!photos.length) MC.showError(`${job.file.name}: no photo in this file.`);
    } catch (err) {
      job.tr.dataset.uploadState = "failed";
      job.tr.classList.add("state-failed");
      job.bar.value = 0;
      job.stateText.textContent = "upload failed";
      job.result.textContent = err.message;
    } finally {
      active -= 1;
      pump();
      schedulePoll(0);
    }
  }

  /* ---- polling ---- */
  function anyPending() {
    for (const tr of rows.values()) if (PENDING.has(tr.dataset.state)) return true;
    return false;
  }

  function schedulePoll(delay = POLL_MS) {
    if (pollTimer !== null) return;
    pollTimer = setTimeout(poll, delay);
  }

  async function poll() {
    pollTimer = null;
    if (!slide) return;
    try {
      applySlide(await MC.api("GET", `/api/slides/${slide.id}`));
    } catch (_) { /* the banner says why; try again */ }
    if (anyPending() || active || queue.length) schedulePoll();
  }

  function applySlide(s) {
    slide = s;
    const uploading = active > 0 || queue.length > 0;
    for (const photo of s.photos || []) {
      // photos already shown are updated; unknown ones (another tab, a reload) are added when no upload is
      // in flight, otherwise they would jump ahead of the upload row they belong to
      if (rows.has(photo.id) || !uploading) rowsBody.append(photoRow(photo));
    }
    table.hidden = rowsBody.children.length === 0;
    if (s.photos_done > 0) {
      summaryBox.replaceChildren(el("h2", { text: "Results so far" }), MC.summary(s, { reviewLink: true }));
      summaryBox.hidden = false;
    }
    updateStatus();
  }

  function updateStatus() {
    const counts = { queued: 0, screening: 0, done: 0, failed: 0, referred: 0 };
    for (const tr of rows.values()) if (tr.dataset.state in counts) counts[tr.dataset.state] += 1;
    const uploads = active + queue.length;
    const parts = [];
    if (uploads) parts.push(`${MC.count(uploads, "file")} uploading`);
    if (counts.queued + counts.screening) parts.push(`${counts.queued + counts.screening} being screened`);
    parts.push(`${counts.done} done`);
    if (counts.failed) parts.push(`${counts.failed} failed`);
    if (counts.referred) parts.push(`${counts.referred} referred`);
    const text = rows.size || uploads ? `${parts.join(", ")}.` : "No photos yet.";
    if (text !== lastStatus) status.textContent = lastStatus = text;
  }

  /* ---- drop zone ---- */
  fileInput.addEventListener("change", () => {
    addFiles([...fileInput.files]);
    fileInput.value = "";
  });
  for (const type of ["dragenter", "dragover"]) {
    dropzone.addEventListener(type, (e) => {
      e.preventDefault();
      if (e.dataTransfer) e.dataTransfer.dropEffect = "copy";
      dropzone.classList.add("over");
    });
  }
  dropzone.addEventListener("dragleave", (e) => {
    if (!dropzone.contains(e.relatedTarget)) dropzone.classList.remove("over");
  });
  dropzone.addEventListener("drop", (e) => {
    e.preventDefault();
    dropzone.classList.remove("over");
    if (e.dataTransfer && e.dataTransfer.files.length) addFiles([...e.dataTransfer.files]);
  });
  // a file dropped beside the zone must not make the browser leave the page
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => e.preventDefault());

  /* ---- start ---- */
  MC.api("GET", "/api/status", undefined, { quiet: true }).then((st) => {
    const l = st && st.limits;
    if (l) limitsHint.textContent = `Up to ${l.max_upload_mb} MB per file, ${l.max_photos_per_slide} photos per slide.`;
  }).catch(() => {});

  const existing = new URLSearchParams(location.search).get("slide");
  if (existing && /^\d+$/.test(existing)) {
    MC.api("GET", `/api/slides/${existing}`).then((s) => {
      startSlide(s);
      applySlide(s);
      if (anyPending()) schedulePoll();
    }).catch(() => {});
  } else {
    nameInput.focus();
  }
})();
