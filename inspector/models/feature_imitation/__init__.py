"""Multi-scale feature imitation (Hu & Lai): independent student sub-blocks fed by the teacher, image pyramid."""
