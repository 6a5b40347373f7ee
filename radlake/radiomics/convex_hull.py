"""Exact convex hull of integer points in 3D (quickhull with outside sets, compiled), and its measures.

The hull candidates of a mask are mesh vertices, midpoints of grid edges, so twice their index
coordinates are integers. On integers every orientation test is exact (int64; a ROI box would have
to be ~10^5 voxels wide before a product overflowed), so the many coplanar points of a voxel
surface need neither merging nor joggling, which is where Qhull spends most of its time on them
(about 2 ms for the 1,500 candidates of a 26k-voxel lesion). Spacing is applied afterwards: an
axis scaling maps the hull of the points onto the hull of the scaled points.

The algorithm is quickhull (Barber, Dobkin & Huhdanpaa 1996): each face keeps the points strictly
above it (its outside set); the furthest point of a face's set becomes a vertex; the faces it sees
(strictly) are removed, the horizon edges are joined to it, and the outside points of the removed
faces are handed to the new faces (a point above a removed face and above no new face is inside
the new hull, because the new faces bound the cone from the new vertex over the old hull).
Points on the hull so far are never above anything and so drop out; the result is a triangulation
of the hull's boundary with every extreme point a vertex (a vertex that later faces made coplanar
stays one, on the boundary: no measure changes).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _grow(array, size):
    bigger = np.empty((size,) + array.shape[1:], dtype=array.dtype)
    bigger[: array.shape[0]] = array
    return bigger


@njit(cache=True, nogil=True)
def _set_plane(points, faces, normals, offsets, f, a, b, c):
    faces[f, 0], faces[f, 1], faces[f, 2] = a, b, c
    ux, uy, uz = points[b, 0] - points[a, 0], points[b, 1] - points[a, 1], points[b, 2] - points[a, 2]
    vx, vy, vz = points[c, 0] - points[a, 0], points[c, 1] - points[a, 1], points[c, 2] - points[a, 2]
    nx, ny, nz = uy * vz - uz * vy, uz * vx - ux * vz, ux * vy - uy * vx
    normals[f, 0], normals[f, 1], normals[f, 2] = nx, ny, nz
    offsets[f] = nx * points[a, 0] + ny * points[a, 1] + nz * points[a, 2]


@njit(cache=True, nogil=True, inline="always")
def _height(points, normals, offsets, f, p):
    """Positive when ``p`` is strictly above face ``f`` (a multiple of its distance, exact)."""
    return normals[f, 0] * points[p, 0] + normals[f, 1] * points[p, 1] + normals[f, 2] * points[p, 2] - offsets[f]


@njit(cache=True, nogil=True)
def _initial_simplex(points):
    """Four affinely independent points, or -1s when all points are coplanar."""
    n = points.shape[0]
    i0 = 0
    for p in range(n):
        if points[p, 0] < points[i0, 0]:
            i0 = p
    i1, best = -1, 0
    for p in range(n):
        dx, dy, dz = points[p, 0] - points[i0, 0], points[p, 1] - points[i0, 1], points[p, 2] - points[i0, 2]
        d = dx * dx + dy * dy + dz * dz
        if d > best:
            i1, best = p, d
    if i1 < 0:
        return -1, -1, -1, -1
    ux, uy, uz = points[i1, 0] - points[i0, 0], points[i1, 1] - points[i0, 1], points[i1, 2] - points[i0, 2]
    i2, best = -1, 0
    for p in range(n):
        vx, vy, vz = points[p, 0] - points[i0, 0], points[p, 1] - points[i0, 1], points[p, 2] - points[i0, 2]
        cx, cy, cz = uy * vz - uz * vy, uz * vx - ux * vz, ux * vy - uy * vx
        d = cx * cx + cy * cy + cz * cz
        if d > best:
            i2, best = p, d
    if i2 < 0:
        return -1, -1, -1, -1
    vx, vy, vz = points[i2, 0] - points[i0, 0], points[i2, 1] - points[i0, 1], points[i2, 2] - points[i0, 2]
    nx, ny, nz = uy * vz - uz * vy, uz * vx - ux * vz, ux * vy - uy * vx
    i3, best = -1, 0
    for p in range(n):
        d = abs(nx * (points[p, 0] - points[i0, 0]) + ny * (points[p, 1] - points[i0, 1])
                + nz * (points[p, 2] - points[i0, 2]))
        if d > best:
            i3, best = p, d
    if i3 < 0:
        return -1, -1, -1, -1
    return i0, i1, i2, i3


@njit(cache=True, nogil=True)
def hull_faces(points):
    """Triangles of the convex hull of ``points`` (int64, ``(n, 3)``) as ``(m, 3)`` vertex indices,
    counter-clockwise seen from outside; an empty array when the points are coplanar."""
    n = points.shape[0]
    if n < 4:
        return np.empty((0, 3), dtype=np.int64)
    a, b, c, d = _initial_simplex(points)
    if a < 0:
        return np.empty((0, 3), dtype=np.int64)
    capacity = 64 + 8 * n
    faces = np.empty((capacity, 3), dtype=np.int64)
    normals = np.empty((capacity, 3), dtype=np.int64)
    offsets = np.empty(capacity, dtype=np.int64)
    neighbours = np.empty((capacity, 3), dtype=np.int64)  # across edge k: faces[f, k] -> faces[f, (k+1) % 3]
    alive = np.zeros(capacity, dtype=np.bool_)
    head = np.full(capacity, -1, dtype=np.int64)  # first point of the face's outside set
    seen = np.full(capacity, -1, dtype=np.int64)  # the last round that tested the face
    visible = np.zeros(capacity, dtype=np.bool_)
    following = np.full(n, -1, dtype=np.int64)  # next point in the same outside set

    _set_plane(points, faces, normals, offsets, 0, a, b, c)
    if _height(points, normals, offsets, 0, d) > 0:
        b, c = c, b  # d must lie below face (a, b, c)
        _set_plane(points, faces, normals, offsets, 0, a, b, c)
    _set_plane(points, faces, normals, offsets, 1, a, d, b)
    _set_plane(points, faces, normals, offsets, 2, b, d, c)
    _set_plane(points, faces, normals, offsets, 3, c, d, a)
    for f in range(4):
        alive[f] = True
        for k in range(3):
            u, v = faces[f, k], faces[f, (k + 1) % 3]
            for g in range(4):
                for j in range(3):
                    if faces[g, j] == v and faces[g, (j + 1) % 3] == u:
                        neighbours[f, k] = g
    for p in range(n):
        if p == a or p == b or p == c or p == d:
            continue
        for f in range(4):
            if _height(points, normals, offsets, f, p) > 0:
                following[p] = head[f]
                head[f] = p
                break
    count = 4

    # a hull of n points has at most 2n - 4 faces, so the removed disc and its horizon fit in n * 3
    stack = np.empty(3 * n, dtype=np.int64)
    removed = np.empty(3 * n, dtype=np.int64)
    horizon = np.empty((3 * n, 3), dtype=np.int64)  # edge start, edge end, the kept face beyond it
    starts_at = np.full(n, -1, dtype=np.int64)  # the new face whose horizon edge starts at a vertex
    ends_at = np.full(n, -1, dtype=np.int64)
    f = 0
    while f < count:
        if not alive[f] or head[f] < 0:
            f += 1
            continue
        apex, best, p = -1, 0, head[f]
        while p >= 0:
            h = _height(points, normals, offsets, f, p)
            if h > best:
                apex, best = p, h
            p = following[p]
        # the faces the apex sees form a disc around f; its boundary is the horizon
        n_removed = n_horizon = 0
        seen[f], visible[f] = f, True
        stack[0], depth = f, 1
        while depth > 0:
            depth -= 1
            g = stack[depth]
            removed[n_removed] = g
            n_removed += 1
            for k in range(3):
                h = neighbours[g, k]
                if seen[h] != f:
                    seen[h] = f
                    visible[h] = _height(points, normals, offsets, h, apex) > 0
                    if visible[h]:
                        stack[depth] = h
                        depth += 1
                if not visible[h]:
                    horizon[n_horizon, 0], horizon[n_horizon, 1] = faces[g, k], faces[g, (k + 1) % 3]
                    horizon[n_horizon, 2] = h
                    n_horizon += 1
        if count + n_horizon > capacity:
            capacity = 2 * (count + n_horizon)
            faces, normals, offsets = _grow(faces, capacity), _grow(normals, capacity), _grow(offsets, capacity)
            neighbours, alive, head = _grow(neighbours, capacity), _grow(alive, capacity), _grow(head, capacity)
            seen, visible = _grow(seen, capacity), _grow(visible, capacity)
            alive[count:] = False
            head[count:] = -1
            seen[count:] = -1
        first_new = count
        for e in range(n_horizon):
            u, v, kept = horizon[e, 0], horizon[e, 1], horizon[e, 2]
            new = count
            count += 1
            _set_plane(points, faces, normals, offsets, new, u, v, apex)
            alive[new] = True
            neighbours[new, 0] = kept
            for j in range(3):
                if faces[kept, j] == v and faces[kept, (j + 1) % 3] == u:
                    neighbours[kept, j] = new
            starts_at[u] = new
            ends_at[v] = new
        for new in range(first_new, count):
            neighbours[new, 1] = starts_at[faces[new, 1]]  # edge v -> apex borders the face starting at v
            neighbours[new, 2] = ends_at[faces[new, 0]]  # edge apex -> u borders the face ending at u
        for r in range(n_removed):
            g = removed[r]
            alive[g] = False
            p = head[g]
            head[g] = -1
            while p >= 0:
                after = following[p]
                if p != apex:
                    for new in range(first_new, count):
                        if _height(points, normals, offsets, new, p) > 0:
                            following[p] = head[new]
                            head[new] = p
                            break
                p = after
        f += 1
    m = 0
    for g in range(count):
        if alive[g]:
            m += 1
    out = np.empty((m, 3), dtype=np.int64)
    m = 0
    for g in range(count):
        if alive[g]:
            out[m] = faces[g]
            m += 1
    return out


@njit(cache=True, nogil=True)
def hull_measures(points, faces, scale):
    """Volume, area and diameter (largest vertex distance) of the hull ``faces`` of ``points``, each
    coordinate axis multiplied by ``scale`` (float64 ``(3,)``)."""
    s0, s1, s2 = scale[0], scale[1], scale[2]
    volume6 = 0  # six times the volume in point units, an exact integer sum
    area = 0.0
    used = np.zeros(points.shape[0], dtype=np.bool_)
    for f in range(faces.shape[0]):
        a, b, c = faces[f, 0], faces[f, 1], faces[f, 2]
        used[a] = used[b] = used[c] = True
        ux, uy, uz = points[b, 0] - points[a, 0], points[b, 1] - points[a, 1], points[b, 2] - points[a, 2]
        vx, vy, vz = points[c, 0] - points[a, 0], points[c, 1] - points[a, 1], points[c, 2] - points[a, 2]
        nx, ny, nz = uy * vz - uz * vy, uz * vx - ux * vz, ux * vy - uy * vx
        volume6 += nx * points[a, 0] + ny * points[a, 1] + nz * points[a, 2]
        # the cross product of scaled vectors scales each component by the other two factors
        wx, wy, wz = nx * (s1 * s2), ny * (s0 * s2), nz * (s0 * s1)
        area += np.sqrt(wx * wx + wy * wy + wz * wz) / 2.0
    vertices = np.flatnonzero(used)
    coordinates = np.empty((3, vertices.shape[0]))
    for axis, factor in enumerate((s0, s1, s2)):
        for k in range(vertices.shape[0]):
            coordinates[axis, k] = points[vertices[k], axis] * factor
    return abs(volume6) * (s0 * s1 * s2) / 6.0, area, _diameter(coordinates[0], coordinates[1], coordinates[2])


@njit(cache=True, nogil=True, fastmath=True)
def _diameter(x, y, z):
    """Largest distance between two of the points (x, y, z): the pairs' inner loop vectorises."""
    longest = 0.0
    for i in range(x.shape[0]):
        for j in range(i + 1, x.shape[0]):
            dx, dy, dz = x[i] - x[j], y[i] - y[j], z[i] - z[j]
            longest = max(longest, dx * dx + dy * dy + dz * dz)
    return np.sqrt(longest)
