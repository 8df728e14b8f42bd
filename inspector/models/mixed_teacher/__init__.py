"""MixedTeacher (Thomine et al., VISAPP 2023, §4): a ResNet and an EfficientNet teacher, one reduced student each."""
