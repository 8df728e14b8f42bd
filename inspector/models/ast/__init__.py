"""AST (Rudolph et al., WACV 2023): a normalizing-flow teacher and an asymmetric convolutional student.

:mod:`.model` holds the config, the model and the registry entry; :mod:`.flow`
the conditional Real-NVP teacher; :mod:`.student` the residual student;
:mod:`.positional` the constant positional encoding.
"""
