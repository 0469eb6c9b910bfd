"""Tables and figures from the trained runs' metrics and histories.

* :mod:`zoomin.report.tables` -- a results table (CSV and Markdown) beside the paper's numbers;
* :mod:`zoomin.report.evidence` -- a row's intervals, majority rate, learned flag and paired comparison;
* :mod:`zoomin.report.stats` -- the statistics behind them (scipy);
* :mod:`zoomin.report.markdown` -- a table as Markdown, with the footnote that defines its columns;
* :mod:`zoomin.report.claims` -- the paper's claims judged from the tables and figures;
* :mod:`zoomin.report.figures` -- the figure drivers: gather runs, models and images, then draw;
* :mod:`zoomin.report.figure_data` -- the numbers behind the figures (accuracies per run, fronts);
* :mod:`zoomin.report.agreement` -- Figure 7: stage-1 attention against the annotation;
* :mod:`zoomin.report.draw` -- matplotlib: every figure drawn from prepared data.
"""
