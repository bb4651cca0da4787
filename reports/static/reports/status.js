// Follows a report's progress on its status page until it is ready or has failed.
(function () {
  "use strict";
  var box = document.getElementById("report-status");
  if (!box) return;
  function field(name) { return box.querySelector('[data-field="' + name + '"]'); }
  function show(status) {
    field("state_label").textContent = status.state_label;
    field("state_label").className = "state state-" + status.state;
    field("message").textContent = status.message || "";
    field("progress").value = status.progress;
    field("progress").textContent = status.progress + " %";
    field("error").textContent = status.error || "";
    field("error").hidden = !status.error;
    if (status.download_url) {
      field("download_url").href = status.download_url;
      field("download_url").textContent = "Download " + status.filename;
      field("details").textContent = status.details;
      field("download").hidden = false;
    }
  }
  function poll() {
    fetch(box.dataset.statusUrl, {headers: {"Accept": "application/json"}, credentials: "same-origin"})
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (status) {
        if (status) show(status);
        if (!status || !status.finished) window.setTimeout(poll, 1000);
      })
      .catch(function () { window.setTimeout(poll, 3000); });
  }
  poll();
})();
