import pytest

from malaria_cnn.data.slides import slide_of


@pytest.mark.parametrize(
    "name, slide",
    [
        ("cell_images/Parasitized/C39P4thinF_IMG_20150622_105253_cell_98.png", "C39"),
        ("C39P4thinF_original_IMG_20150622_105102_cell_90.png", "C39"),  # a variant of the same slide
        ("C1_thinF_IMG_20150604_104722_cell_9.png", "C1"),
        ("c204ThinF_IMG_20151029_100918_cell_62.png", "C204"),
        ("Slide7_IMG_x.png", "Slide7"),
        ("random_crop.png", None),
    ],
)
def test_nih_naming(name, slide):
    assert slide_of(name) == slide


def test_a_pattern_names_the_slide_by_its_first_group_or_whole_match():
    assert slide_of("lab/Uninfected/patient-12_slide3_cell7.png", r"patient-(\d+)") == "12"
    assert slide_of("patient-12_cell7.png", r"patient-\d+") == "patient-12"
    assert slide_of("cell7.png", r"patient-(\d+)") is None
