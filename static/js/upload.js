// The upload form: drag-and-drop, the same size and type checks the server makes (the
// server checks again; this only saves a pointless upload), and batches. One photo or
// video is sent by the form itself and opens its result page; several are sent one request
// each to the API, so that each has its own progress bar, its own answer and its own error,
// and each then shows its analysis as it finishes.
(function () {
  const form = document.getElementById("upload-form");
  if (!form) return;
  const input = form.querySelector('input[type="file"]');
  const dropzone = document.getElementById("dropzone");
  const chosen = document.getElementById("chosen-file");
  const errors = document.getElementById("upload-errors");
  const results = document.getElementById("batch-results");
  const button = document.getElementById("upload-button");
  const maxBytes = Number(form.dataset.maxBytes);
  const maxVideoBytes = Number(form.dataset.maxVideoBytes);
  const maxFiles = Number(form.dataset.maxFiles);
  const accepted = form.dataset.accept.split(",");
  const videos = form.dataset.videoAccept.split(",");
  const verdictLabels = JSON.parse(form.dataset.verdictLabels);
  const statusLabels = JSON.parse(form.dataset.statusLabels);
  const csrfToken = form.querySelector('input[name="csrfmiddlewaretoken"]').value;
  const POLL_MS = 3000;

  function problemWith(file) {
    if (!file) return "Choose a photo or a video to upload.";
    const isVideo = videos.includes(file.type);
    if (file.type && !isVideo && !accepted.includes(file.type)) {
      return "Only JPEG, PNG and WebP images and MP4, WebM and MOV videos are accepted.";
    }
    if (file.size === 0) return "The file is empty.";
    const limit = isVideo ? maxVideoBytes : maxBytes;
    if (file.size > limit) return "The file is larger than the " + limit / 1e6 + " MB limit.";
    return "";
  }

  function showError(text) {
    errors.replaceChildren();
    if (!text) return;
    const p = document.createElement("p");
    p.textContent = text;
    errors.appendChild(p);
  }

  function show(files) {
    const total = Array.from(files).reduce((sum, file) => sum + file.size, 0);
    if (!files.length) chosen.textContent = "No file chosen";
    else if (files.length === 1) chosen.textContent = files[0].name + " (" + (total / 1e6).toFixed(2) + " MB)";
    else chosen.textContent = files.length + " files chosen (" + (total / 1e6).toFixed(2) + " MB)";
    if (files.length > maxFiles) showError("Choose at most " + maxFiles + " files at once.");
    else showError(files.length === 1 ? problemWith(files[0]) : "");
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text) node.textContent = text;
    return node;
  }

  // One line of the batch: the file's name, a progress bar and what became of it.
  function line(file) {
    const item = element("li", "batch-item");
    item.append(element("span", "batch-name", file.name));
    const progress = element("progress", "batch-progress");
    progress.max = 1;
    progress.value = 0;
    item.append(progress, element("span", "batch-state", "Waiting"));
    results.append(item);
    return item;
  }

  function settle(item, className, text, link) {
    item.classList.add(className);
    item.querySelector(".batch-state").textContent = text;
    const progress = item.querySelector("progress");
    if (progress) progress.remove();
    if (link) {
      const anchor = element("a", "", "Open the result");
      anchor.href = link;
      item.append(" ", anchor);
    }
  }

  function resultUrl(id) {
    return form.dataset.resultUrl.replace("00000000-0000-0000-0000-000000000000", id);
  }

  function describe(submission) {
    if (submission.status === "done") return verdictLabels[submission.verdict] || statusLabels.done;
    return statusLabels[submission.status] || submission.status;
  }

  function follow(item, submission) {
    const state = item.querySelector(".batch-state");
    state.textContent = describe(submission);
    if (["done", "no_face", "failed"].includes(submission.status)) return;
    window.setTimeout(() => {
      fetch(submission.url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then((response) => (response.ok ? response.json() : Promise.reject(response.status)))
        .then((fresh) => follow(item, fresh))
        .catch(() => { state.textContent += " (open the result to follow it)"; });
    }, POLL_MS);
  }

  function send(file, item) {
    return new Promise((resolve) => {
      const request = new XMLHttpRequest();
      request.open("POST", form.dataset.apiUrl);
      request.setRequestHeader("X-CSRFToken", csrfToken);
      request.setRequestHeader("Accept", "application/json");
      const progress = item.querySelector("progress");
      item.querySelector(".batch-state").textContent = "Uploading";
      request.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) progress.value = event.loaded / event.total;
      });
      request.addEventListener("load", () => {
        let body = null;
        try { body = JSON.parse(request.responseText); } catch (error) { body = null; }
        if (request.status === 200 || request.status === 202) {
          settle(item, "accepted", request.status === 202 ? "Accepted" : "Already uploaded", resultUrl(body.id));
          follow(item, body);
        } else {
          settle(item, "refused", (body && body.detail) || "The upload failed (" + request.status + ").");
        }
        resolve();
      });
      request.addEventListener("error", () => {
        settle(item, "refused", "The upload failed: the connection broke.");
        resolve();
      });
      const data = new FormData();
      data.append("image", file, file.name);
      request.send(data);
    });
  }

  async function sendAll(files) {
    button.disabled = true;
    results.replaceChildren();
    const lines = files.map((file) => [file, line(file)]);
    // One after another: the account's rate limit and in-flight limit count each photo.
    for (const [file, item] of lines) {
      const problem = problemWith(file);
      if (problem) settle(item, "refused", problem);
      else await send(file, item);
    }
    button.disabled = false;
    input.value = "";
    show([]);
  }

  input.addEventListener("change", () => show(input.files));
  ["dragenter", "dragover"].forEach((name) =>
    dropzone.addEventListener(name, (event) => { event.preventDefault(); dropzone.classList.add("dragover"); })
  );
  ["dragleave", "drop"].forEach((name) =>
    dropzone.addEventListener(name, (event) => { event.preventDefault(); dropzone.classList.remove("dragover"); })
  );
  dropzone.addEventListener("drop", (event) => {
    if (!event.dataTransfer.files.length) return;
    input.files = event.dataTransfer.files;
    show(input.files);
  });
  form.addEventListener("submit", (event) => {
    const files = Array.from(input.files);
    if (files.length > 1) {
      event.preventDefault();
      if (files.length > maxFiles) showError("Choose at most " + maxFiles + " files at once.");
      else sendAll(files);
      return;
    }
    const problem = problemWith(files[0]);
    if (problem) {
      event.preventDefault();
      showError(problem);
    }
  });
})();
