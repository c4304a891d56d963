"""Compiled (numba) kernels of the blob detector: small Gaussian-spot fits, one window at a time.

The split and merge tests of :mod:`napari_dynfit.detect.blobs` fit one and two Gaussian spots (one shared width,
plus a constant offset for the tails of neighbouring spots) to a window of pixels around each tested blob. A window
holds ~50-150 pixels and the models 5-10 parameters, far too small for batched numpy linear algebra to pay off
(whose batched matrix products also wake every BLAS thread): here each fit is a plain Levenberg-Marquardt loop with
the normal equations accumulated pixel by pixel and solved by Gaussian elimination, compiled once (``cache=True``)
and releasing the GIL, so that frames still run in parallel threads.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _model(vals, offs, shift, sig, q, k, f, jac, ew, uw):
    """Model values ``f`` (m,) and Jacobian ``jac`` (P, m) of ``k`` spots + offset at parameters ``q``; returns the
    residual sum of squares against ``vals``.

    The window is a C-ordered grid: pixel ``i`` lies at ``offs[i] + shift`` from the window's centre, so each spot's
    Gaussian is the product of per-axis factors (``ew``, with the offsets in widths ``uw``; scratch arrays
    (nd, >= 2 h + 1)): ``sum(2 h_d + 1)`` exponentials per spot instead of one per pixel.
    """
    m, nd = offs.shape
    npar = q.size
    w = q[npar - 2]
    b = q[npar - 1]
    inv = np.empty(nd)
    for d in range(nd):
        inv[d] = 1.0 / (sig[d] * w)
    for i in range(m):
        f[i] = b
        jac[npar - 2, i] = 0.0
        jac[npar - 1, i] = 1.0
    for g in range(k):
        o = g * (nd + 1)
        a = q[o]
        for d in range(nd):
            h = -offs[0, d]
            for t in range(2 * h + 1):
                u = (t - h + shift[d] - q[o + 1 + d]) * inv[d]
                uw[d, t] = u
                ew[d, t] = np.exp(-0.5 * u * u)
        for i in range(m):
            e = 1.0
            u2 = 0.0
            for d in range(nd):
                t = offs[i, d] - offs[0, d]
                e *= ew[d, t]
                u2 += uw[d, t] * uw[d, t]
            ae = a * e
            f[i] += ae
            jac[o, i] = e
            for d in range(nd):
                jac[o + 1 + d, i] = ae * uw[d, offs[i, d] - offs[0, d]] * inv[d]
            jac[npar - 2, i] += ae * u2 / w
    rss = 0.0
    for i in range(m):
        r = f[i] - vals[i]
        rss += r * r
    return rss


@njit(cache=True, nogil=True)
def _solve(a, b):
    """Solve the small dense system ``a x = b`` by Gaussian elimination with partial pivoting (a, b overwritten);
    returns False when singular."""
    n = b.size
    for c in range(n):
        p = c
        for r in range(c + 1, n):
            if abs(a[r, c]) > abs(a[p, c]):
                p = r
        if a[p, c] == 0.0 or not np.isfinite(a[p, c]):
            return False
        if p != c:
            for j in range(n):
                a[c, j], a[p, j] = a[p, j], a[c, j]
            b[c], b[p] = b[p], b[c]
        for r in range(c + 1, n):
            fct = a[r, c] / a[c, c]
            if fct != 0.0:
                for j in range(c, n):
                    a[r, j] -= fct * a[c, j]
                b[r] -= fct * b[c]
    for c in range(n - 1, -1, -1):
        s = b[c]
        for j in range(c + 1, n):
            s -= a[c, j] * b[j]
        b[c] = s / a[c, c]
    return True


@njit(cache=True, nogil=True)
def _lm_one(vals, offs, shift, sig, q, k, iters, rss_stop):
    """Levenberg-Marquardt fit of one window (``q`` updated in place); returns the residual sum of squares.

    A fit still above ``2.5 * rss_stop`` after one step (``rss_stop`` after three) is abandoned: it cannot reach
    the acceptance level of the caller; so is one whose width factor is more than 0.5 from 1 after three steps.
    """
    m, nd = offs.shape
    npar = q.size
    ew = np.empty((nd, 2 * np.max(np.abs(offs)) + 1))
    uw = np.empty_like(ew)
    f = np.empty(m)
    jac = np.empty((npar, m))
    f2 = np.empty(m)
    jac2 = np.empty((npar, m))
    q2 = np.empty(npar)
    jtj = np.empty((npar, npar))
    jtr = np.empty(npar)
    a = np.empty((npar, npar))
    step = np.empty(npar)
    rss = _model(vals, offs, shift, sig, q, k, f, jac, ew, uw)
    lam = 1e-2
    fresh = True  # normal equations to (re)build: only after an accepted step
    for it in range(iters):
        if (it == 1 and rss > 2.5 * rss_stop) or (it == 3 and (rss > rss_stop or abs(q[npar - 2] - 1) > 0.5)):
            break  # (a width this far from one spot's after three steps: no caller accepts it)
        if fresh:
            for p in range(npar):
                s = 0.0
                for i in range(m):
                    s += jac[p, i] * (vals[i] - f[i])
                jtr[p] = s
                for p2 in range(p, npar):
                    s = 0.0
                    for i in range(m):
                        s += jac[p, i] * jac[p2, i]
                    jtj[p, p2] = s
                    jtj[p2, p] = s
            fresh = False
        for p in range(npar):
            step[p] = jtr[p]
            for p2 in range(npar):
                a[p, p2] = jtj[p, p2]
            a[p, p] += lam * jtj[p, p] + 1e-9
        if not _solve(a, step):
            break
        for p in range(npar):
            q2[p] = q[p] + step[p]
        if not (0.3 < q2[npar - 2] < 3.0):  # a width factor far from one spot's: reject the step
            lam *= 4.0
            if lam > 1e2:
                break
            continue
        rss2 = _model(vals, offs, shift, sig, q2, k, f2, jac2, ew, uw)
        if rss2 < rss:
            done = rss - rss2 < 1e-2 * rss
            q[:] = q2
            f[:] = f2
            jac[:, :] = jac2
            rss = rss2
            lam /= 3.0
            fresh = True
            if done:
                break
        else:
            lam *= 4.0
            if lam > 1e2:
                break
    return rss


@njit(cache=True, nogil=True)
def fit_spots(vals, offs, shift, sig, q0, k, iters, rss_stop):
    """Fit ``k`` Gaussian spots of one shared width plus a constant offset to many windows.

    Parameters
    ----------
    vals : ndarray, shape (c, m)
        Pixel values of each window (background-flattened image, objects positive).
    offs : ndarray of int, shape (m, nd)
        The windows' pixel offsets (a C-ordered grid of +-h per axis, as :func:`napari_dynfit.detect.blobs._offsets`).
    shift : ndarray, shape (c, nd)
        Offset of each window's grid from its centre (pixels): window pixel ``i`` lies at ``offs[i] + shift``.
    sig : ndarray, shape (nd,)
        Spot sigma per axis (pixels); the fitted widths are ``factor * sig``.
    q0 : ndarray, shape (c, k * (nd + 1) + 2)
        Start ``[amplitude, centre (nd)] * k + [width factor, offset]`` per window (centres relative to the window
        centre).
    k : int
        Number of spots.
    iters : int
        Maximum Levenberg-Marquardt steps.
    rss_stop : ndarray, shape (c,)
        Fits that are still above this residual sum of squares after 3 steps are abandoned.

    Returns
    -------
    q : ndarray, shape (c, P)
        Fitted parameters.
    rss : ndarray, shape (c,)
        Residual sums of squares (image units squared).
    """
    c = vals.shape[0]
    q = q0.copy()
    rss = np.empty(c)
    for j in range(c):
        rss[j] = _lm_one(vals[j], offs, shift[j], sig, q[j], k, iters, rss_stop[j])
    return q, rss


@njit(cache=True, nogil=True)
def start_amplitudes(vals, offs, shift, sig, c1, c2):
    """Amplitudes (c, 2) of two Gaussian spots of width ``sig`` at ``c1``, ``c2`` (c, nd; relative to the window
    centre) that best explain each window (linear least squares, no offset; grid windows as in
    :func:`fit_spots`)."""
    c = vals.shape[0]
    m, nd = offs.shape
    amp = np.empty((c, 2))
    for j in range(c):
        s11 = s12 = s22 = r1 = r2 = 0.0
        for i in range(m):
            u1 = 0.0
            u2 = 0.0
            for d in range(nd):
                x = offs[i, d] + shift[j, d]
                a = (x - c1[j, d]) / sig[d]
                b = (x - c2[j, d]) / sig[d]
                u1 += a * a
                u2 += b * b
            g1 = np.exp(-0.5 * u1)
            g2 = np.exp(-0.5 * u2)
            s11 += g1 * g1
            s12 += g1 * g2
            s22 += g2 * g2
            r1 += g1 * vals[j, i]
            r2 += g2 * vals[j, i]
        s11 += 1e-9
        s22 += 1e-9
        det = s11 * s22 - s12 * s12
        amp[j, 0] = (s22 * r1 - s12 * r2) / det
        amp[j, 1] = (s11 * r2 - s12 * r1) / det
    return amp


@njit(cache=True, nogil=True)
def _axis_weights(pos, base, offs, sig, power, wts):
    """Per-axis Gaussian factors of a window: ``wts[d, o] = exp(-power * ((base[d] + o - h_d - pos[d]) / sig[d])^2)``
    for the ``2 h_d + 1`` offsets ``o`` along axis ``d`` of the C-ordered grid ``offs`` (its first row is ``-h``):
    the weight of a window pixel is the product over the axes (the window's exponentials in ``sum(2 h_d + 1)``
    calls instead of one per pixel)."""
    for d in range(pos.size):
        h = -offs[0, d]
        for o in range(2 * h + 1):
            u = (base[d] + o - h - pos[d]) / sig[d]
            wts[d, o] = np.exp(-power * u * u)


@njit(cache=True, nogil=True)
def shape_hessian(img1d, shape, pos, offs, sig):
    """Hessian (units of sigma) of the image smoothed by a Gaussian of width ``sig`` (nd,) at each ``pos`` (n, nd),
    over the window ``offs`` (k, nd, C-ordered grid) around the nearest pixel (pixels outside the image count 0).

    Returns the sums ``sum_i v_i exp(-u_i^2 / 2) (u_i u_i^T - I)`` with ``u`` the pixel offset from ``pos`` in
    sigmas (n, nd, nd), the weights ``sum_i v_i exp(-u_i^2 / 2)`` (n,) (the smoothed value) and the window's peak
    value (n,; 0 where the window leaves the image and nothing inside is higher).
    """
    n, nd = pos.shape
    k = offs.shape[0]
    h = np.zeros((n, nd, nd))
    gs = np.zeros(n)
    peak = np.empty(n)
    base = np.empty(nd, np.int64)
    wts = np.empty((nd, 2 * np.max(np.abs(offs)) + 1))
    u = np.empty(nd)
    for j in range(n):
        _nearest(pos[j], shape, base)
        _axis_weights(pos[j], base, offs, sig, 0.5, wts)
        pk = -np.inf
        for i in range(k):
            lin = 0
            g = 1.0
            for d in range(nd):
                c = base[d] + offs[i, d]
                if c < 0 or c >= shape[d]:
                    lin = -1
                    break
                lin = lin * shape[d] + c
                u[d] = (c - pos[j, d]) / sig[d]
                g *= wts[d, offs[i, d] - offs[0, d]]
            if lin < 0:
                pk = max(pk, 0.0)
                continue
            v = img1d[lin]
            pk = max(pk, v)
            gv = v * g
            gs[j] += gv
            for a in range(nd):
                h[j, a, a] += gv * (u[a] * u[a] - 1.0)
                for b in range(a + 1, nd):
                    h[j, a, b] += gv * u[a] * u[b]
        peak[j] = pk
        for a in range(nd):
            for b in range(a + 1, nd):
                h[j, b, a] = h[j, a, b]
    return h, gs, peak


@njit(cache=True, nogil=True)
def components(n, pairs):
    """Connected components of ``n`` nodes joined by ``pairs`` (e, 2) (union-find): the number of components and
    the label of each node (n,), numbered in the order of each component's smallest node, as
    :func:`scipy.sparse.csgraph.connected_components` numbers them (without building a sparse matrix, whose
    set-up cost more than the detection of a whole frame's groups)."""
    parent = np.arange(n)
    for e in range(pairs.shape[0]):
        a = pairs[e, 0]
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        b = pairs[e, 1]
        while parent[b] != b:
            parent[b] = parent[parent[b]]
            b = parent[b]
        if a < b:
            parent[b] = a
        elif b < a:
            parent[a] = b
    labels = np.empty(n, np.int64)
    root_label = np.full(n, -1, np.int64)
    count = 0
    for v in range(n):
        r = v
        while parent[r] != r:
            r = parent[r]
        if root_label[r] < 0:
            root_label[r] = count
            count += 1
        labels[v] = root_label[r]
    return count, labels


@njit(cache=True, nogil=True)
def local_maxima(img1d, shape, base, offs):
    """Whether each pixel ``base`` (n, nd) is >= every pixel of its window ``offs`` (k, nd) inside the image (pixels
    outside do not count), in the raveled (C-order) image ``img1d`` of shape ``shape``."""
    n, nd = base.shape
    out = np.ones(n, np.bool_)
    for j in range(n):
        lin0 = 0
        for d in range(nd):
            lin0 = lin0 * shape[d] + base[j, d]
        v = img1d[lin0]
        for i in range(offs.shape[0]):
            lin = _linear(base, offs, j, i, shape)
            if lin >= 0 and img1d[lin] > v:
                out[j] = False
                break
    return out


@njit(cache=True, nogil=True)
def _linear(base, offs, j, i, shape):
    """Linear (C-order) index of pixel ``base[j] + offs[i]`` in an image of shape ``shape``; -1 outside it."""
    lin = 0
    for d in range(shape.size):
        c = base[j, d] + offs[i, d]
        if c < 0 or c >= shape[d]:
            return -1
        lin = lin * shape[d] + c
    return lin


@njit(cache=True, nogil=True)
def gather(img1d, shape, base, offs):
    """Pixels of an image at ``base + offs`` (0 outside the image) and the inside mask.

    ``img1d`` the raveled (C-order) image of shape ``shape`` (nd,), ``base`` (n, nd) and ``offs`` (k, nd) integer
    pixel positions: returns values (n, k) as float64 and a boolean mask (n, k).
    """
    n, nd = base.shape
    k = offs.shape[0]
    vals = np.zeros((n, k))
    inside = np.zeros((n, k), np.bool_)
    for j in range(n):
        for i in range(k):
            lin = _linear(base, offs, j, i, shape)
            if lin >= 0:
                vals[j, i] = img1d[lin]
                inside[j, i] = True
    return vals, inside


@njit(cache=True, nogil=True)
def _pixel_weight(base, offs, i, shape, wts):
    """Linear index of pixel ``base + offs[i]`` (-1 outside the image) and its weight, the product of the per-axis
    factors ``wts`` of :func:`_axis_weights`."""
    lin = 0
    g = 1.0
    for d in range(base.size):
        c = base[d] + offs[i, d]
        if c < 0 or c >= shape[d]:
            return -1, 0.0
        lin = lin * shape[d] + c
        g *= wts[d, offs[i, d] - offs[0, d]]
    return lin, g


@njit(cache=True, nogil=True)
def _nearest(pos, shape, base):
    for d in range(pos.size):
        base[d] = min(max(np.int64(np.round(pos[d])), 0), shape[d] - 1)


@njit(cache=True, nogil=True)
def weighted_centroid(img1d, shape, pos, offs, sig):
    """Doubled shift of the Gaussian-weighted centroid (see :func:`napari_dynfit.detect.blobs._weighted_centroid`).

    ``pos`` (n, nd) float positions, ``offs`` (k, nd) window offsets around the nearest pixel (C-ordered grid),
    ``sig`` (nd,): returns the new positions (n, nd); pixels outside the image and negative values weigh nothing.
    """
    n, nd = pos.shape
    out = pos.copy()
    base = np.empty(nd, np.int64)
    acc = np.empty(nd)
    wts = np.empty((nd, 2 * np.max(np.abs(offs)) + 1))
    for j in range(n):
        _nearest(pos[j], shape, base)
        _axis_weights(pos[j], base, offs, sig, 0.5, wts)
        acc[:] = 0.0
        sw = 0.0
        for i in range(offs.shape[0]):
            lin, g = _pixel_weight(base, offs, i, shape, wts)
            if lin < 0 or img1d[lin] <= 0:
                continue
            w = img1d[lin] * g
            sw += w
            for d in range(nd):
                acc[d] += w * (base[d] + offs[i, d] - pos[j, d])
        if sw > 0:
            for d in range(nd):
                out[j, d] = pos[j, d] + min(max(2.0 * acc[d] / sw, -1.0), 1.0)
    return out


@njit(cache=True, nogil=True)
def gaussian_mean(img1d, shape, pos, offs, sig):
    """Mean of the image weighted by a Gaussian of half the width ``sig`` (nd,) centred on each ``pos`` (n, nd),
    over the window ``offs`` (k, nd, C-ordered grid) around the nearest pixel, inside the image only."""
    n, nd = pos.shape
    out = np.zeros(n)
    base = np.empty(nd, np.int64)
    wts = np.empty((nd, 2 * np.max(np.abs(offs)) + 1))
    for j in range(n):
        _nearest(pos[j], shape, base)
        _axis_weights(pos[j], base, offs, sig, 2.0, wts)
        sg = 0.0
        sv = 0.0
        for i in range(offs.shape[0]):
            lin, g = _pixel_weight(base, offs, i, shape, wts)
            if lin >= 0:
                sg += g
                sv += g * img1d[lin]
        out[j] = sv / max(sg, 1e-12)
    return out


@njit(cache=True, nogil=True)
def _reflect(i, n):
    if i < 0:
        return -i - 1
    if i >= n:
        return 2 * n - i - 1
    return i


@njit(cache=True, nogil=True)
def log2d(img, k0y, k2y, k0x, k2x, scale):
    """``scale * (d2/dy2 + d2/dx2)`` of a 2D float32 image smoothed by separable kernels (``k0*`` smoothing,
    ``k2*`` second derivative, odd lengths), mode "reflect" like :func:`scipy.ndimage.gaussian_laplace`."""
    ny, nx = img.shape
    ry = k0y.size // 2
    rx = k0x.size // 2
    a0 = np.zeros((ny, nx), np.float32)
    a2 = np.zeros((ny, nx), np.float32)
    for i in range(ny):
        for t in range(k0y.size):
            row = _reflect(i + t - ry, ny)
            c0 = np.float32(k0y[t])
            c2 = np.float32(k2y[t])
            for j in range(nx):
                v = img[row, j]
                a0[i, j] += c0 * v
                a2[i, j] += c2 * v
    out = np.empty((ny, nx), np.float32)
    b0 = np.empty(nx + 2 * rx, np.float32)
    b2 = np.empty(nx + 2 * rx, np.float32)
    acc = np.empty(nx, np.float32)
    for i in range(ny):
        for j in range(nx + 2 * rx):
            jj = _reflect(j - rx, nx)
            b0[j] = a0[i, jj]
            b2[j] = a2[i, jj]
        acc[:] = 0.0
        for t in range(k0x.size):
            c0 = np.float32(k0x[t])
            c2 = np.float32(k2x[t])
            for j in range(nx):
                acc[j] += c2 * b0[j + t] + c0 * b2[j + t]
        for j in range(nx):
            out[i, j] = scale * acc[j]
    return out
