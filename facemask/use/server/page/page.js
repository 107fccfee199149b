"use strict";
// The page: photos (chosen or dropped) and webcam frames go to POST /predict; each face comes back with a box,
// drawn over the picture with its label; hovering a box shows the four probabilities.
const CAMERA_FRAMES_PER_SECOND = 3;
const byId = (id) => document.getElementById(id);
const percent = (value, total) => `${((100 * value) / total).toFixed(3)}%`;

async function predict(blob, name, wholeImage) {
  const form = new FormData();
  form.append("image", blob, name);
  const response = await fetch(wholeImage ? "/predict?whole_image=1" : "/predict", { method: "POST", body: form });
  const answer = await response.json().catch(() => ({ error: `${response.status} ${response.statusText}` }));
  if (!response.ok) throw new Error(answer.error || `${response.status} ${response.statusText}`);
  return answer;
}

function drawFaces(frame, faces, width, height) {
  frame.querySelectorAll(".box").forEach((box) => box.remove());
  for (const face of faces.filter((record) => record.box)) {
    const [x, y, w, h] = face.box;
    const box = document.createElement("div");
    box.className = `box ${face.mask ? "mask" : "no-mask"}`;
    Object.assign(box.style, { left: percent(x, width), top: percent(y, height),
                               width: percent(w, width), height: percent(h, height) });
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = `${face.mask ? "mask" : "no mask"}, ${face.age_group} ${Math.round(100 * face.confidence)}%`;
    const probabilities = document.createElement("div");
    probabilities.className = "probabilities";
    probabilities.textContent = Object.entries(face.probabilities)
      .map(([name, p]) => `${name.replaceAll("_", " ")}: ${(100 * p).toFixed(1)}%`).join("\n");
    box.append(label, probabilities);
    frame.append(box);
  }
}

function summary(answer) {
  const faces = answer.faces.filter((record) => record.box);
  if (!faces.length) return "no face found";
  const whole = faces.some((record) => record.status === "whole_image") ? " (the whole photo, no face found)" : "";
  return `${faces.length} face${faces.length > 1 ? "s" : ""}${whole}`;
}

async function showPhoto(file) {
  const figure = byId("result").content.firstElementChild.cloneNode(true);
  const [frame, image, caption] = [figure.querySelector(".frame"), figure.querySelector("img"),
                                   figure.querySelector(".caption")];
  byId("results").prepend(figure);
  caption.textContent = `${file.name}: asking the server...`;
  image.alt = file.name;
  image.src = URL.createObjectURL(file);
  try {
    await image.decode().catch(() => {});  // a file the browser cannot show may still get the server's reason
    const answer = await predict(file, file.name, byId("whole").checked);
    drawFaces(frame, answer.faces, image.naturalWidth, image.naturalHeight);
    caption.textContent = `${file.name}: ${summary(answer)}`;
  } catch (error) {
    figure.classList.add("failed");
    caption.textContent = `${file.name}: ${error.message}`;
  }
}

let camera = null;

async function startCamera() {
  const status = byId("camera-status");
  if (!navigator.mediaDevices?.getUserMedia) {
    status.textContent = "this browser gives no camera here (it needs https or localhost)";
    byId("camera").hidden = false;
    return;
  }
  const video = byId("video");
  try {
    video.srcObject = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 } });
  } catch (error) {
    status.textContent = `no camera: ${error.message}`;
    byId("camera").hidden = false;
    return;
  }
  await video.play();
  byId("camera").hidden = false;
  byId("camera-button").textContent = "Stop the camera";
  camera = { canvas: document.createElement("canvas"), busy: false,
             timer: setInterval(sendFrame, 1000 / CAMERA_FRAMES_PER_SECOND) };
}

function stopCamera() {
  clearInterval(camera.timer);
  byId("video").srcObject.getTracks().forEach((track) => track.stop());
  byId("video").srcObject = null;
  byId("camera").hidden = true;
  byId("camera-button").textContent = "Start the camera";
  camera = null;
}

async function sendFrame() {
  const video = byId("video");
  if (!camera || camera.busy || !video.videoWidth) return;  // one frame in flight at a time: slow answers drop frames
  const { canvas } = camera;
  camera.busy = true;
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  try {
    const frame = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.85));
    const answer = await predict(frame, "camera.jpg", false);
    drawFaces(video.parentElement, answer.faces, canvas.width, canvas.height);
    byId("camera-status").textContent = summary(answer);
  } catch (error) {
    byId("camera-status").textContent = error.message;
  } finally {
    if (camera) camera.busy = false;
  }
}

function setUp() {
  const drop = byId("drop");
  byId("files").addEventListener("change", (event) => [...event.target.files].forEach(showPhoto));
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    [...event.dataTransfer.files].filter((file) => file.type.startsWith("image/")).forEach(showPhoto);
  });
  byId("camera-button").addEventListener("click", () => (camera ? stopCamera() : startCamera()));
  fetch("/health").then((response) => response.json())
    .then((health) => { byId("model").textContent = `Model: ${health.model_version}, ${health.model_format}; detector ${health.detector}.`; })
    .catch(() => { byId("model").textContent = "The server does not answer."; });
}

setUp();
