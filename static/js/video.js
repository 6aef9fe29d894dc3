// A video's result: a click on the P(fake) timeline moves the player to that moment, a
// person's "Play from there" button to their most suspicious frame, and a line on the chart
// follows the player. Delegated, because htmx swaps the result in when the analysis ends.
(function () {
  function playerFor(element) {
    var holder = element.closest("[data-player]");
    return document.getElementById(holder ? holder.dataset.player : "video-player");
  }

  function seek(video, seconds) {
    if (!video) return;
    video.currentTime = Math.min(Math.max(seconds, 0), video.duration || seconds);
  }

  // The time under a click: the chart's own coordinates, whatever size it is drawn at.
  function timeAt(chart, event) {
    var point = chart.createSVGPoint();
    point.x = event.clientX;
    point.y = event.clientY;
    var x = point.matrixTransform(chart.getScreenCTM().inverse()).x;
    var share = (x - Number(chart.dataset.plotLeft)) / Number(chart.dataset.plotWidth);
    return Math.min(Math.max(share, 0), 1) * Number(chart.dataset.duration);
  }

  document.addEventListener("click", function (event) {
    var chart = event.target.closest("svg.timeline-chart");
    if (chart) {
      seek(playerFor(chart), timeAt(chart, event));
      return;
    }
    var button = event.target.closest("[data-seek]");
    if (button) {
      var video = document.getElementById("video-player");
      seek(video, Number(button.dataset.seek));
      if (video) video.scrollIntoView({ block: "nearest" });
    }
  });

  function movePlayhead(event) {
    var video = event.target;
    if (!(video instanceof HTMLVideoElement)) return;
    document.querySelectorAll("[data-player='" + video.id + "'] svg.timeline-chart").forEach(function (chart) {
      var line = chart.querySelector(".playhead");
      var share = Math.min(video.currentTime / Number(chart.dataset.duration), 1);
      var x = String(Number(chart.dataset.plotLeft) + share * Number(chart.dataset.plotWidth));
      line.setAttribute("x1", x);
      line.setAttribute("x2", x);
    });
  }
  // Media events do not bubble: listen in the capture phase.
  document.addEventListener("timeupdate", movePlayhead, true);
  document.addEventListener("seeked", movePlayhead, true);
})();
