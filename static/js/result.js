// The result page's heatmaps: each slider fades its face's heatmap over the crop. Delegated,
// because the page's body is swapped in by htmx while the analysis runs.
document.addEventListener("input", (event) => {
  const slider = event.target.closest(".heat-opacity");
  if (!slider) return;
  const layer = slider.closest(".heat-stack").querySelector(".heat-layer");
  layer.style.opacity = String(slider.value / 100);
});
