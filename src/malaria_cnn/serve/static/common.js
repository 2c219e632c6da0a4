/* malaria-cnn serve: helpers shared by every page (no framework, no build step). */
"use strict";

const MC = (() => {
  const ANSWER_LABEL = {
    parasitized: "Parasitized",
    uninfected: "Uninfected",
    not_cell: "Not a red cell",
    skip: "Skipped",
  };

  /* ---- DOM ---- */
  /** el("a", {href: "/x", class: "c", dataset: {id: 1}}, "text", child) — text children become text nodes. */
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key === "text") node.textContent = value;
      else if (key === "hidden") node.hidden = Boolean(value);
      else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    append(node, children);
    return node;
  }

  function append(node, children) {
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function slideId() {
    const main = document.querySelector("main");
    const v = main ? main.dataset.slideId : "";
    return v ? Number(v) : null;
  }

  /* ---- errors ---- */
  function oneLine(text) {
    const line = String(text ?? "").split(/\r?\n/).map((s) => s.trim()).find((s) => s) || "";
    return line.length > 300 ? line.slice(0, 297) + "…" : line;
  }

  function showError(message) {
    const box = document.getElementById("error");
    if (!box) return;
    const text = box.querySelector(".error-text") || box;
    const line = oneLine(message) || "Something went wrong.";
    text.textContent = line;
    box.title = line;
    box.hidden = false;
  }

  function clearError() {
    const box = document.getElementById("error");
    if (box) box.hidden = true;
  }

  function messageFromJson(data) {
    if (!data || typeof data !== "object") return "";
    if (typeof data.error === "string") return data.error;
    if (typeof data.detail === "string") return data.detail;
    if (Array.isArray(data.detail) && data.detail.length && data.detail[0].msg) return String(data.detail[0].msg);
    return "";
  }

  function statusLine(status, statusText) {
    if (status === 0) return "Network error: the server did not answer.";
    return `Request failed (${status}${statusText ? " " + statusText : ""}).`;
  }

  async function errorFromResponse(resp) {
    let message = "";
    try {
      const type = resp.headers.get("content-type") || "";
      if (type.includes("json")) message = messageFromJson(await resp.json());
    } catch (_) { /* not JSON: fall back to the status */ }
    const err = new Error(oneLine(message) || statusLine(resp.status, resp.statusText));
    err.status = resp.status;
    return err;
  }

  /**
   * api(method, path, body, {quiet}) — JSON in, JSON out, same-origin credentials.
   * Throws Error(one-line server message) with .status; shows it in the banner unless quiet.
   */
  async function api(method, path, body, options = {}) {
    const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (body instanceof FormData) init.body = body;
    else if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(path, init);
    } catch (_) {
      const err = new Error(statusLine(0));
      err.status = 0;
      if (!options.quiet) showError(err.message);
      throw err;
    }
    if (!resp.ok) {
      const err = await errorFromResponse(resp);
      if (!options.quiet) showError(err.message);
      throw err;
    }
    if (resp.status === 204) return null;
    const type = resp.headers.get("content-type") || "";
    return type.includes("json") ? resp.json() : resp;
  }

  /** Multipart upload with XMLHttpRequest so the upload % can be shown. Resolves to the JSON reply. */
  function upload(path, formData, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", path);
      xhr.withCredentials = true;
      xhr.responseType = "text";
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.addEventListener("progress", (e) => {
        if (e.lengthComputable && onProgress) onProgress(e.loaded / e.total);
      });
      const fail = (message, status) => {
        const err = new Error(oneLine(message) || statusLine(status, xhr.statusText));
        err.status = status;
        showError(err.message);
        reject(err);
      };
      xhr.addEventListener("load", () => {
        let data = null;
        try { data = JSON.parse(xhr.responseText); } catch (_) { /* not JSON */ }
        if (xhr.status >= 200 && xhr.status < 300 && data) resolve(data);
        else fail(messageFromJson(data), xhr.status);
      });
      xhr.addEventListener("error", () => fail("", 0));
      xhr.addEventListener("abort", () => fail("Upload cancelled.", 0));
      xhr.send(formData);
    });
  }

  /** Fetch a file (the export zip) and save it; errors go to the banner instead of a JSON page. */
  async function download(url, statusEl) {
    if (statusEl) statusEl.textContent = "Preparing the export…";
    try {
      const resp = await api("POST", url, undefined);
      const blob = await resp.blob();
      const disposition = resp.headers.get("content-disposition") || "";
      const match = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(disposition);
      const name = match ? decodeURIComponent(match[1]) : "corrections.zip";
      const href = URL.createObjectURL(blob);
      const a = el("a", { href, download: name, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(href), 10000);
      if (statusEl) statusEl.textContent = `Export saved as ${name}.`;
    } catch (err) {
      if (statusEl) statusEl.textContent = "The export failed.";
    }
  }

  /* ---- formatting ---- */
  const isNum = (x) => typeof x === "number" && Number.isFinite(x);
  const pctNumber = (x, digits = 2) => (x * 100).toFixed(digits);

  function pct(x) {
    return isNum(x) ? `${pctNumber(x)}%` : "—";
  }

  /** "1.23% (0.40–2.90%)" */
  function interval(p, lower, upper) {
    if (!isNum(p)) return "—";
    if (!isNum(lower) || !isNum(upper)) return pct(p);
    return `${pctNumber(p)}% (${pctNumber(lower)}–${pctNumber(upper)}%)`;
  }

  function p3(p) {
    return isNum(p) ? p.toFixed(3) : "—";
  }

  function count(n, word, plural) {
    return `${n} ${n === 1 ? word : plural || word + "s"}`;
  }

  function date(unix) {
    if (!isNum(unix)) return "";
    return new Date(unix * 1000).toLocaleString(undefined, {
      year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
    });
  }

  function answerLabel(answer) {
    return answer ? ANSWER_LABEL[answer] || String(answer) : "";
  }

  /** An answer as a badge with its reason as text (never colour alone); "(so far)" while photos wait. */
  function answerBadge(model, provisional) {
    const wrap = el("span", { class: "answer" });
    let cls = "badge-none";
    let label;
    if (!model) label = "No result yet";
    else if (model.answer === "infected") { cls = "badge-infected"; label = "Infected"; }
    else if (model.answer === "not infected") { cls = "badge-clear"; label = "Not infected"; }
    else if (model.answer === "refer") { cls = "badge-refer"; label = "Refer"; }
    else if (!model.answer) label = "No slide rule";
    else label = String(model.answer);
    wrap.append(el("span", { class: `badge ${cls}`, text: label + (model && provisional ? " (so far)" : "") }));
    if (model && model.reason) wrap.append(" ", el("span", { class: "reason", text: model.reason }));
    if (model && provisional) {
      wrap.append(" ", el("span", { class: "hint provisional", text: "photos are still being screened" }));
    }
    return wrap;
  }

  function photoCounts(slide) {
    const parts = [`${slide.photos_done}/${slide.photos_total} done`];
    if (slide.photos_queued) parts.push(`${slide.photos_queued} waiting`);
    if (slide.photos_failed) parts.push(`${slide.photos_failed} failed`);
    if (slide.photos_referred) parts.push(`${slide.photos_referred} referred`);
    return parts.join(", ");
  }

  function reviewProgress(review) {
    if (!review) return "—";
    if (!review.flagged) return "no cells flagged";
    const remain = review.flagged - review.answered;
    return review.complete ? `${review.answered}/${review.flagged} answered, complete`
      : `${review.answered}/${review.flagged} answered, ${remain} to go`;
  }

  /** [term, value] rows as a definition list; a null row is left out. */
  function dl(rows) {
    const list = el("dl", { class: "facts" });
    for (const [term, value] of rows.filter(Boolean)) {
      list.append(el("dt", { text: term }), append(el("dd"), [value]));
    }
    return list;
  }

  /** What segmentation found a cell to be: an uncertain object may not be a red cell at all. */
  function kindText(kind) {
    return kind === "uncertain object"
      ? "uncertain object: segmentation cannot tell it from a white cell, a platelet or debris"
      : kind;
  }

  /** The slide summary: its answer after the review so far, the model's alone beside it. */
  function summary(slide, options = {}) {
    const model = slide.model;
    const review = slide.review || {};
    const after = slide.answer;
    const answerPart = el("section", { class: "sum-answer", "aria-label": "The slide's answer" },
      el("h3", { text: "Answer" }),
      el("p", { id: "slide-answer" }, answerBadge(after, slide.provisional)),
      dl([["Review reaches", after && isNum(after.detection_limit)
        ? `${pctNumber(after.detection_limit, 3)}% (once every flagged cell is answered and none is a parasite)`
        : "—"]]));
    const modelPart = el("section", { class: "sum-model", "aria-label": "The model's answer alone" },
      el("h3", { text: "Model alone" }),
      el("p", {}, answerBadge(model, slide.provisional)),
      dl([
        ["Corrected parasitemia", model ? interval(model.parasitemia, model.lower, model.upper) : "—"],
        ["Red cells found", String(slide.cells_total)],
        ["Called parasitized", `${slide.called} (${pct(slide.called_share)})`],
        ["Photos", photoCounts(slide)],
      ]));
    let status;
    if (!review.flagged) status = el("span", { class: "badge badge-clear", text: "Nothing flagged" });
    else if (review.complete) status = el("span", { class: "badge badge-clear", text: "Complete" });
    else {
      const remain = review.flagged - review.answered;
      status = el("span", { class: "badge badge-refer", text: `${remain} of ${review.flagged} flagged to answer` });
    }
    const reviewRows = [
      ["Parasitized, confirmed", String(review.parasitized ?? "—")],
      ["Red cells", String(review.red_cells ?? "—")],
      ["Parasitemia", interval(review.parasitemia, review.lower, review.upper)],
      ["Answered", `${review.answered ?? 0} of ${review.flagged ?? 0} flagged` +
        (review.skipped ? `, ${review.skipped} skipped` : "") +
        (review.not_cell ? `, ${review.not_cell} not a red cell` : "")],
    ];
    const reviewPart = el("section", { class: "sum-review", "aria-label": "The review so far" },
      el("h3", { text: "Review" }),
      el("p", {}, status),
      dl(reviewRows));
    if (options.reviewLink && review.flagged) {
      reviewPart.append(el("p", {}, el("a", { href: `/slides/${slide.id}/review`, text: review.complete ? "Change answers" : "Review the flagged cells" })));
    }
    return el("div", { class: "summary-grid" }, answerPart, reviewPart, modelPart);
  }

  /** Says on the page when the screening worker has stopped (GET /api/status), checked every 10 s. */
  async function watchWorker() {
    try {
      const status = await api("GET", "/api/status", undefined, { quiet: true });
      if (status.worker && !status.worker.running) {
        showError("The screening worker has stopped: photos are not screened. Restart malaria-cnn serve.");
        return;
      }
      if (status.worker && status.worker.error) showError(`Screening is failing: ${status.worker.error}`);
    } catch (_) { /* the page's own requests say what is wrong */ }
    setTimeout(watchWorker, 10000);
  }

  /* ---- wiring for every page ---- */
  document.addEventListener("DOMContentLoaded", () => {
    watchWorker();
    const close = document.querySelector("#error .error-close");
    if (close) close.addEventListener("click", clearError);
    for (const a of document.querySelectorAll("a[href^='/api/export']")) {
      a.addEventListener("click", (e) => {
        e.preventDefault();
        download(a.getAttribute("href"));
      });
    }
  });

  return {
    el, append, slideId, oneLine, showError, clearError, api, upload, download,
    pct, interval, p3, count, date, answerLabel, answerBadge, photoCounts, reviewProgress, summary, dl,
    kindText, ANSWER_LABEL,
  };
})();
