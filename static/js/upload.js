// Drag-and-drop onto the upload form, with the same size and type checks the server makes
// (the server checks again; this only saves a pointless upload).
(function () {
  const form = document.getElementById("upload-form");
  if (!form) return;
  const input = form.querySelector('input[type="file"]');
  const dropzone = document.getElementById("dropzone");
  const chosen = document.getElementById("chosen-file");
  const errors = document.getElementById("upload-errors");
  const maxBytes = Number(form.dataset.maxBytes);
  const maxVideoBytes = Number(form.dataset.maxVideoBytes);
  const accepted = form.dataset.accept.split(",");
  const videos = form.dataset.videoAccept.split(",");

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

  function show(file) {
    chosen.textContent = file ? file.name + " (" + (file.size / 1e6).toFixed(2) + " MB)" : "No file chosen";
    errors.innerHTML = "";
    const problem = file ? problemWith(file) : "";
    if (problem) {
      const p = document.createElement("p");
      p.textContent = problem;
      errors.appendChild(p);
    }
  }

  input.addEventListener("change", () => show(input.files[0]));
  ["dragenter", "dragover"].forEach((name) =>
    dropzone.addEventListener(name, (event) => { event.preventDefault(); dropzone.classList.add("dragover"); })
  );
  ["dragleave", "drop"].forEach((name) =>
    dropzone.addEventListener(name, (event) => { event.preventDefault(); dropzone.classList.remove("dragover"); })
  );
  dropzone.addEventListener("drop", (event) => {
    if (!event.dataTransfer.files.length) return;
    input.files = event.dataTransfer.files;
    show(input.files[0]);
  });
  form.addEventListener("submit", (event) => {
    const problem = problemWith(input.files[0]);
    if (problem) {
      event.preventDefault();
      show(input.files[0]);
      if (!input.files[0]) errors.innerHTML = "<p>" + problem + "</p>";
    }
  });
})();
