/* malaria-cnn serve: helpers shared by every page (no framework, no build step): the DOM, errors, requests,
   uploads, downloads and the worker's state. format.js adds how figures and summaries are worded. */
"use strict";

const MC = (() => {
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

  return { el, append, slideId, oneLine, showError, clearError, api, upload, download };
})();
