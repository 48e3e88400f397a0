// Django admin, periodic task form (django-celery-beat): shows the chosen crontab in plain English under the
// field. The package's own inline script, as a file the Content-Security-Policy allows.
(function () {
  "use strict";
  var $ = django.jQuery;
  var readable = JSON.parse(document.getElementById("readable-crontabs").textContent);
  var help = document.getElementById("periodic-task-overrides").dataset.crontabHelp;
  $(function () {
    $(".field-crontab_translation").hide();
    $(".field-crontab").change(function () {
      var translation = readable[$("#id_crontab").val()];
      $(".field-crontab .help").text(help).append($("<br>"), document.createTextNode("Translation: " + translation));
    });
  });
})();
