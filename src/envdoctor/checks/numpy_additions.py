"""Packages whose code uses NumPy names that the installed NumPy does not have yet (``matrices/numpy_additions.json``,
written by ``tools/gen_numpy_additions.py``): ``np.exceptions``, ``np.dtypes`` (NumPy 1.25), ``np.isdtype``,
``np.concat``, ``np.trapezoid``, ``np.strings``, ``np.lib.array_utils`` ... (2.0), ``np.unstack``,
``np.cumulative_sum`` (2.1), ``np.matvec`` (2.2). The names and the release that added each are read from NumPy's
own wheels; the uses from each package release's code.

A release in a row of the table, beside an older NumPy that pip left in place (its Requires-Dist admits it), raises
``AttributeError: module 'numpy' has no attribute ...``: at import when a use runs at module level (fail), else when a
function that uses one runs (warn). The fix is the NumPy that has the names, unless another installed package's
requirement keeps NumPy below it, else the nearest release of the package that uses none of them. Unknown versions
give an inferred warning (``verified: false``) only when most candidate releases break: most releases of the package
read use missing names, or most NumPy releases that install here lack the ones the installed release uses. The table
is read and checked by the code of ``numpy_aliases.py``.
"""

from __future__ import annotations

from envdoctor.checks import CheckContext
from envdoctor.checks.numpy_aliases import ADDITIONS, NumpyAliasTable, check_name_table, load_name_table
from envdoctor.findings import Finding
from envdoctor.matrices import Matrices


def load_numpy_additions(matrices: Matrices) -> NumpyAliasTable | None:
    """The table of the matrices folder (None when absent); a malformed one raises MatrixError naming the key."""
    return load_name_table(matrices, ADDITIONS)


def check_numpy_additions(ctx: CheckContext) -> list[Finding]:
    return check_name_table(ctx, load_numpy_additions(ctx.matrices))
