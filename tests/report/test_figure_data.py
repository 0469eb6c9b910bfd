"""The numbers behind the figures."""

from __future__ import annotations

from zoomin.models.params import ATSParams, ZoomInParams
from zoomin.report.figure_data import configuration_label


def test_a_configuration_is_labelled_by_the_parameters_that_set_its_memory():
    assert configuration_label(ZoomInParams(s1=0.05, s2=0.1).to_dict()) == "s1=0.05 s2=0.1 tile=250 n=10"
    assert configuration_label(ATSParams(scale=0.3, n=50).to_dict()) == "scale=0.3 n=50"
    assert configuration_label({"feature": "lenet"}) == ""
