"""STFPM (Wang et al. 2021): the baseline student-teacher feature pyramid."""
