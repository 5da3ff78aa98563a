"""Software: the cascade language, pass analysis, float64 reference, golden models, compiler."""
