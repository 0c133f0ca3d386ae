"""Studies: train several models, evaluate them and report, above every other floor.

A study drives the CIFAR trainer (wrn_cifar) and the evaluations (eval) in one
process; nothing below imports it. `./run_cifar.sh quickstart` and
`./run_cifar.sh mini` run the two studies here.
"""
