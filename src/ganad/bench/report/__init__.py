"""``ganad report FOLDER``: one self-contained HTML page (and a Markdown twin) from a results store.

For every grid, budget, data set and protocol in the store:

* the set-up the numbers depend on: budget (epochs, training / test rows,
  batch, image size), hyper-parameters that are not the paper defaults, how
  the epoch and the threshold were selected, and the machine, device and
  thread count the times were measured with;
* a table of the grid's first metric, mean ± std over seeds, per model and
  class (best per column in bold), then every metric with training seconds
  and scoring ms/sample; when the trials ran on more than one machine, the
  times move to a table of medians per machine, since a mean over hosts of
  different speed describes none of them;
* the published numbers on the line of the row they compare with, with
  paper, table, protocol, metric and selection rule
  (:mod:`ganad.bench.published`);
* per-class bars per model (the survey's Figure 5), ROC and PR curves, score
  histograms normal vs anomalous, training loss curves, and for image data a
  grid of inputs / reconstructions / heat maps of the lowest- and
  highest-scored test images.

Tables and bars need only ``results.jsonl``, so a results folder committed
without its (large) ``trials/`` folders still gets them. The other figures
read files in ``trials/<id>/``; when those are gone the page says which
figures are missing and why. A figure drawn earlier, while the trial folders
were there, is kept (``figures.json`` beside the page records the trials, and when
they finished, that each figure was drawn from), so regenerating a committed
report does not lose its pictures.

Figures are PNG files in ``figures/`` next to ``report.md``; the HTML embeds
them (base64) so it can be mailed or attached as one file. A report folder
is only ever rewritten if ganad wrote it (a marker in ``report.html``),
unless ``overwrite`` is given.
"""

from ganad.bench.report.page import MARKER, REPORT_FILES, write_report
from ganad.bench.report.sections import CHANCE

__all__ = ["CHANCE", "MARKER", "REPORT_FILES", "write_report"]
