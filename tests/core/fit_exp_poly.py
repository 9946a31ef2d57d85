#!/usr/bin/python3
# Fits the polynomial of the fast CPU kernels' exp (core/backends/cpu_fast_kernels_body.inc):
# e^r on [-ln2/2, ln2/2] as 1 + r + r^2 P(r), minimax for relative error (Lawson's iteratively
# reweighted least squares), then checks the float32 Horner evaluation in ulp.
#   /usr/bin/python3 tests/core/fit_exp_poly.py 6     (degree; the kernels use 6)
import numpy as np
a = np.log(2)/2
x = np.linspace(-a, a, 20001)
f = np.exp(x)
import sys; deg = int(sys.argv[1])
# fix c0 = 1, c1 = 1: fit (e^x - 1 - x)/x^2 with degree deg-2, relative error on e^x
V = np.vstack([x**(k+2) for k in range(deg-1)]).T
w = np.ones_like(x)
for it in range(200):
    W = w / f
    c, *_ = np.linalg.lstsq(V * W[:,None], (f - 1 - x) * W, rcond=None)
    err = (1 + x + V @ c - f) / f
    w = w * np.abs(err) ** 0.5 + 1e-30
    w /= w.sum()
err = (1 + x + V @ c - f)/f
print("max rel err", np.abs(err).max())
cs = [np.float32(v) for v in c]
print(", ".join("%.9e" % v for v in cs))
# float32 Horner simulation: p = c_last; p = p*r + c_k ...; p = p*r + 1; p = p*r + 1
xs = np.float32(np.linspace(-a, a, 200001))
p = np.full_like(xs, cs[-1])
for ck in reversed(cs[:-1]):
    p = np.float32(p.astype(np.float64)*xs + ck)
p = np.float32(p.astype(np.float64)*xs + 1)
p = np.float32(p.astype(np.float64)*xs + 1)
ref = np.exp(xs.astype(np.float64))
ulp = np.abs(p - ref) / np.spacing(np.float32(ref)).astype(np.float64)
print("max ulp (fma sim)", ulp.max())
