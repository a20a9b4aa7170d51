"""The arithmetic engine shared by the generators: spanning-tree decompositions of a
layer's output columns (constant-matrix and binary layers alike) and their costs."""
