/* Review (/slides/{id}/review): answer the flagged cells, most likely parasite first, by keyboard or buttons.
   Keys: P parasitized, U uninfected, N not a red cell, S / Space skip, Z / Backspace / Ctrl+Z undo. */
"use strict";

(() => {
  const { el } = MC;
  const id = MC.slideId();
  const grid = document.getElementById("grid");
  const summaryBox = document.getElementById("summary");
  const reviewStatus = document.getElementById("review-status");
  const actionStatus = document.getElementById("action-status");
  const done = document.getElementById("review-done");
  const currentBody = document.getElementById("current-body");
  const buttons = document.querySelectorAll(".answer-buttons button");
  const wide = window.matchMedia("(min-width: 1001px)");

  let cells = [];              // Cell, in the server's order (most likely parasite first)
  const tiles = new Map();     // cell id -> tile button
  let current = null;          // the current cell id, or null
  let chain = Promise.resolve(); // answers and undos go to the server one after another, in order
  let inflight = 0;

  let lastSummary = null;
  // cell.answer is what the server has saved (data-answer shows only that); cell.pending is an answer
  // sent and not yet confirmed, which already counts for choosing the next cell
  const isAnswered = (c) => Boolean(c.answer) && c.answer !== "skip";
  const effective = (c) => (c.pending !== undefined ? c.pending : c.answer);
  const cellById = (cid) => cells.find((c) => c.id === cid);

  /* ---- tiles ---- */
  function tile(cell) {
    const answerText = el("span", { class: "tile-answer" });
    const t = el("button", {
      type: "button", class: "tile", dataset: { cellId: cell.id, answer: "" },
    },
    el("img", { src: `/api/cells/${cell.id}/crop`, alt: "", width: "96", height: "96", loading: "lazy" }),
    el("span", { class: "tile-p", text: `p ${MC.p3(cell.p)}` }),
    answerText);
    t.addEventListener("click", () => setCurrent(cell.id, true));
    tiles.set(cell.id, t);
    paintTile(cell);
    return t;
  }

  function paintTile(cell) {
    const t = tiles.get(cell.id);
    if (!t) return;
    const answer = effective(cell) || "";
    const saving = cell.pending !== undefined;
    t.dataset.answer = cell.answer || "";
    t.className = `tile${answer ? " ans-" + answer : ""}${saving ? " saving" : ""}${cell.id === current ? " current" : ""}`;
    t.querySelector(".tile-answer").textContent =
      (answer ? MC.answerLabel(answer) : "not answered") + (saving ? " (saving…)" : "");
    t.setAttribute("aria-label",
      `Cell ${cell.n} of photo ${cell.photo_id}, p ${MC.p3(cell.p)}, model: ${cell.label}, ` +
      (answer ? `answer: ${MC.answerLabel(answer)}` : "not answered"));
    if (cell.id === current) t.setAttribute("aria-current", "true");
    else t.removeAttribute("aria-current");
  }

  /* ---- the current cell ---- */
  function nextAfter(fromId) {
    if (!cells.length) return null;
    const start = Math.max(0, cells.findIndex((c) => c.id === fromId));
    const order = cells.slice(start + 1).concat(cells.slice(0, start + 1));
    const unanswered = order.find((c) => !effective(c));
    if (unanswered) return unanswered.id;
    const skipped = order.find((c) => effective(c) === "skip");
    return skipped ? skipped.id : null;
  }

  function firstOpen() {
    const unanswered = cells.find((c) => !effective(c));
    if (unanswered) return unanswered.id;
    const skipped = cells.find((c) => effective(c) === "skip");
    return skipped ? skipped.id : null;
  }

  function setCurrent(cellId, focusTile) {
    const before = current;
    current = cellId;
    if (before !== null) { const c = cellById(before); if (c) paintTile(c); }
    const cell = cellId === null ? null : cellById(cellId);
    if (cell) {
      paintTile(cell);
      const t = tiles.get(cell.id);
      // side by side, bring the tile into view; stacked (tablet), keep the current panel and its buttons in view
      if (wide.matches) t.scrollIntoView({ block: "nearest", inline: "nearest" });
      if (focusTile) t.focus({ preventScroll: true });
    }
    renderCurrent();
    preloadNext();
  }

  function renderCurrent() {
    const cell = current === null ? null : cellById(current);
    for (const b of buttons) b.disabled = b.dataset.action !== "undo" && !cell;
    if (!cell) {
      currentBody.replaceChildren(el("p", { class: "hint", text: cells.length
        ? "No cell left to answer. Pick a tile to change its answer."
        : "No cells flagged on this slide." }));
      currentBody.dataset.currentCellId = "";
      return;
    }
    currentBody.dataset.currentCellId = cell.id;
    const grad = el("img", { src: `/api/cells/${cell.id}/gradcam`, alt: `Grad-CAM of cell ${cell.n}`, class: "big" });
    const gradNote = el("span", { class: "hint", text: "Computing Grad-CAM…" });
    grad.addEventListener("load", () => gradNote.remove());
    grad.addEventListener("error", () => { gradNote.textContent = "Grad-CAM unavailable"; grad.remove(); });
    currentBody.replaceChildren(
      el("div", { class: "current-images" },
        el("figure", { class: "context" }, el("img", { src: `/api/cells/${cell.id}/context`,
          alt: `Cell ${cell.n} among its neighbours`, class: "context-img" }),
          el("figcaption", { text: "In the photo (boxed)" })),
        el("figure", {}, el("img", { src: `/api/cells/${cell.id}/input`, alt: `What the model saw of cell ${cell.n}`,
          class: "big pixelated" }), el("figcaption", { text: "The model's input" })),
        el("figure", {}, grad, gradNote, el("figcaption", { text: "Grad-CAM" }))),
      MC.dl([
        ["p (parasitized)", MC.p3(cell.p)],
        ["Model's call", cell.label],
        MC.foundAs(cell),
        ["Photo, cell", `photo ${cell.photo_id}, cell ${cell.n}`],
        ["Answer", cell.answer ? MC.answerLabel(cell.answer) : "none yet"],
      ]));
  }

  function preloadNext() {
    const next = current === null ? null : nextAfter(current);
    if (next !== null && next !== current) {
      for (const view of ["context", "input", "gradcam"]) new Image().src = `/api/cells/${next}/${view}`;
    }
  }

  /* ---- status and summary ---- */
  function renderStatus() {
    const answered = cells.filter(isAnswered).length;
    const all = cells.length > 0 && answered === cells.length;
    const saved = inflight === 0 && lastSummary && lastSummary.review && lastSummary.review.complete;
    const confirmed = lastSummary && lastSummary.review && lastSummary.review.parasitized > 0;
    reviewStatus.textContent = `${answered} of ${cells.length} answered${all && saved ? ", complete" : ""}` +
      (confirmed ? ". A parasite is confirmed: the slide is infected. Go on to count, or stop here." : "");
    done.hidden = !all && cells.length > 0;
    if (!done.hidden) {
      done.replaceChildren(
        el("strong", { text: cells.length ? `All ${cells.length} flagged cells are answered.` : "No cells flagged on this slide." }), " ",
        el("a", { href: `/slides/${id}`, text: "Open the slide" }), " · ",
        el("a", { href: `/api/export?slide=${id}`, class: "export", text: "Export the corrections" }));
      done.querySelector("a.export").addEventListener("click", (e) => {
        e.preventDefault();
        MC.download(`/api/export?slide=${id}`, actionStatus);
      });
    }
  }

  function renderSummary(slide) {
    if (!slide) return;
    lastSummary = slide;
    document.getElementById("review-title").textContent = `Review ${slide.name}`;
    document.title = `Review ${slide.name} · malaria-cnn`;
    summaryBox.replaceChildren(MC.summary(slide));
  }

  /* ---- actions ---- */
  function enqueue(task) {
    inflight += 1;
    const run = chain.then(task).finally(() => {
      inflight -= 1;
      renderStatus();
    });
    chain = run.catch(() => {});
    return run;
  }

  function answer(kind) {
    const cell = current === null ? null : cellById(current);
    if (!cell) return;
    cell.pending = kind; // moves on at once; data-answer follows the server's reply
    cell.sending = (cell.sending || 0) + 1;
    paintTile(cell);
    renderStatus();
    setCurrent(nextAfter(cell.id) ?? (kind === "skip" ? cell.id : null), false);
    actionStatus.textContent = `Cell ${cell.n}: ${MC.answerLabel(kind)}.`;
    enqueue(async () => {
      try {
        const reply = await MC.api("PUT", `/api/cells/${cell.id}/answer`, { answer: kind });
        if (reply.cell) Object.assign(cell, reply.cell);
        if (--cell.sending === 0) delete cell.pending;
        paintTile(cell);
        renderSummary(reply.summary);
        if (cell.id === current) renderCurrent();
      } catch (err) {
        if (--cell.sending === 0) delete cell.pending;
        paintTile(cell);
        setCurrent(cell.id, false);
        actionStatus.textContent = `Cell ${cell.n}: not saved (${err.message}).`;
      }
      renderStatus();
    });
  }

  function undo() {
    actionStatus.textContent = "Undoing the latest answer…";
    enqueue(async () => {
      try {
        const reply = await MC.api("POST", `/api/slides/${id}/undo`);
        renderSummary(reply.summary);
        if (!reply.cell) {
          actionStatus.textContent = "Nothing to undo.";
          return;
        }
        let cell = cellById(reply.cell.id);
        if (cell) {
          Object.assign(cell, reply.cell);
          if (!cell.sending) delete cell.pending;
        }
        else {
          cell = reply.cell;
          cells.push(cell);
          grid.append(tile(cell));
        }
        paintTile(cell);
        setCurrent(cell.id, false);
        actionStatus.textContent = `Cell ${cell.n}: answer taken back` +
          (cell.answer ? `, now ${MC.answerLabel(cell.answer)}.` : ".");
      } catch (_) {
        actionStatus.textContent = "Undo failed.";
      }
      renderStatus();
    });
  }

  function act(action) {
    if (action === "undo") undo();
    else answer(action);
  }

  for (const b of buttons) b.addEventListener("click", () => act(b.dataset.action));

  function typing(target) {
    if (!(target instanceof Element)) return false;
    if (target.isContentEditable) return true;
    if (target.tagName === "TEXTAREA" || target.tagName === "SELECT") return true;
    if (target.tagName === "INPUT") {
      return !["checkbox", "radio", "button", "submit", "reset", "range", "color", "file"].includes(target.type);
    }
    return false;
  }

  document.addEventListener("keydown", (e) => {
    if (typing(e.target) || e.altKey) return;
    const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
    if (e.ctrlKey || e.metaKey) {
      if (key === "z" && !e.shiftKey) { e.preventDefault(); if (!e.repeat) act("undo"); }
      return;
    }
    const map = { p: "parasitized", u: "uninfected", n: "not_cell", s: "skip", " ": "skip", z: "undo", Backspace: "undo" };
    const action = map[key];
    if (!action) return;
    e.preventDefault(); // Space would also click a focused button and scroll the page
    if (e.repeat) return;
    act(action);
  });
  document.addEventListener("keyup", (e) => {
    if (e.key === " " && !typing(e.target) && !e.ctrlKey && !e.metaKey && !e.altKey) e.preventDefault();
  });

  /* ---- start ---- */
  async function load() {
    try {
      const data = await MC.api("GET", `/api/slides/${id}/review`);
      cells = data.cells || [];
      grid.replaceChildren(...cells.map(tile));
      renderSummary(data.summary);
      renderStatus();
      setCurrent(firstOpen(), false);
    } catch (_) {
      reviewStatus.textContent = "Could not load the flagged cells.";
    }
  }

  load();
})();
