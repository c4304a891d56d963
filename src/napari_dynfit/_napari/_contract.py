"""The step contract: what the DynFit panel may ask of a step widget (and nothing else).

Every step widget of the panel derives from :class:`StepContract` and declares, as class attributes,

* ``INPUTS``: ``(slot, attribute, kinds, hint)`` per input: the layer kinds (napari class names, e.g.
  ``"Tracks"``) or file patterns (``"*.json"``) the slot takes, and what to do when nothing fits;
* ``PARAMS``: ``{name: attribute}`` of the parameters the panel may fill from the data
  (``dt``, ``spot_sigma``, ...);
* ``OUTPUTS``: name patterns (:mod:`fnmatch`) of the layers the step makes, each alone or as
  ``(pattern, kind, ...)`` with the napari layer kinds made under that name (``("tracks", "Tracks")``: a Points
  layer the user called ``tracks`` is not the step's); the layers the step made in this session are recognised
  whatever their name (:meth:`~StepContract.remember`: ``"tracks [1]"`` when napari renamed it, or renamed by
  the user), the patterns recognise the others (e.g. read back from a project). A step shows its layers with
  :func:`._layers.show_layer` ``(..., owner=self)``: a re-run updates the layer it made
  (:meth:`~StepContract.made_layer`), never a layer of the user's that has the output's name;
* ``NEEDS``: what the step's method needs in the data (``"chemical field"``, ``"drift"``), checked by
  :mod:`._fit_checks` before it runs.

and gets the public methods :meth:`~StepContract.inputs`, :meth:`~StepContract.accepts`,
:meth:`~StepContract.set_input`, :meth:`~StepContract.defaults`, :meth:`~StepContract.apply_defaults`,
:meth:`~StepContract.makes` and the result signal :attr:`~StepContract.made` (emitted by the step with
what it made). The panel drives its steps only through these.

:meth:`~StepContract.apply_defaults` refuses an unknown parameter name (``KeyError``: a renamed widget
must not silently lose its defaults) and never overwrites a value the user changed by hand.
"""

from __future__ import annotations

import fnmatch
import weakref
from pathlib import Path

from psygnal import Signal


def _inner(layer):
    return getattr(layer, "__wrapped__", layer)


def _value(w):
    """The value of a magicgui value widget or a Qt spin box / check box / combo box."""
    if hasattr(w, "isChecked"):
        return bool(w.isChecked())
    if hasattr(w, "currentText") and not hasattr(w, "value"):
        return w.currentText()
    v = w.value
    return v() if callable(v) else v


def _set_value(w, value) -> None:
    if hasattr(w, "setChecked") and isinstance(value, bool):
        w.setChecked(value)
    elif hasattr(w, "setValue"):
        w.setValue(value)
    else:
        if hasattr(w, "max") and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = min(max(value, w.min), w.max)
        w.value = value


def _changed(w):
    """The "value changed" signal of a magicgui or Qt widget."""
    for name in ("changed", "valueChanged", "toggled", "currentTextChanged"):
        sig = getattr(w, name, None)
        if sig is not None and hasattr(sig, "connect"):
            return sig
    return None


class LayerOwner:
    """Mixin of a widget that shows result layers through :func:`._layers.show_layer` ``(..., owner=self)``: it
    records the layers it made (:meth:`remember`) and finds them again (:meth:`made_layer`, :meth:`made_as`), so
    a re-run updates its own layer and never a user's layer of the same name."""

    def remember(self, layer, name: str | None = None):
        """Record ``layer`` as one this step made (then :meth:`makes` recognises it whatever its name); returns it.

        Parameters
        ----------
        layer : napari.layers.Layer
            The layer the step added or updated (e.g. what :func:`._layers.show_layer` returned).
        name : str, optional
            The name the step shows it under (its output slot, e.g. ``"detections"``): :meth:`made_layer` finds it
            by that name later, whatever the layer is called then (``"detections [1]"``, renamed by the user).

        Returns
        -------
        napari.layers.Layer
            ``layer``.
        """
        made = getattr(self, "_made_layers", None)
        if made is None:
            made = self._made_layers = weakref.WeakSet()  # a layer the viewer dropped is not kept alive
        made.add(_inner(layer))
        if name is not None:
            if getattr(self, "_made_as", None) is None:
                self._made_as = {}
            self._made_as[name] = weakref.ref(_inner(layer))
        return layer

    def made_as(self, layer, *names: str) -> bool:
        """Whether ``layer`` is the layer this step made under one of ``names`` (:meth:`remember` with a name)."""
        made = getattr(self, "_made_as", None) or {}
        inner = _inner(layer)
        return any(made[n]() is inner for n in names if n in made)

    def slot_of(self, layer) -> str | None:
        """The name this step made ``layer`` under (:meth:`remember` with a name), else ``None``: what a project
        records as the layer's owner, so that a re-opened project's step updates it (:meth:`claim`)."""
        inner = _inner(layer)
        return next((n for n, ref in (getattr(self, "_made_as", None) or {}).items() if ref() is inner), None)

    def claim(self, layer, name: str) -> bool:
        """Take ``layer`` (one a project records as this step's, made under ``name``) as the step's own, unless the
        step already has a live layer under ``name`` in ``layer``'s viewer; ``True`` if it was taken."""
        ref = (getattr(self, "_made_as", None) or {}).get(name)
        if ref is not None and ref() is not None and ref() is not _inner(layer):
            viewer = getattr(self, "_viewer", None) or getattr(self, "viewer", None)
            if viewer is None or self.made_layer(name, viewer.layers) is not None:
                return False
        self.remember(layer, name)
        return True

    def made_layer(self, name: str, layers):
        """The layer this step made under ``name`` (:meth:`remember` with ``name``) when it is still among
        ``layers`` (the viewer's layer list), whatever it is called now; else ``None`` (never a layer the step
        did not make, whatever its name)."""
        ref = (getattr(self, "_made_as", None) or {}).get(name)
        layer = ref() if ref is not None else None
        if layer is None:
            return None
        return next((lay for lay in layers if _inner(lay) is layer), None)


#: the layer owners docked beside the panel, not its steps (the closure widget): :func:`dock_owner`
_DOCKED = weakref.WeakSet()


def dock_owner(widget) -> None:
    """Record ``widget`` (a :class:`LayerOwner` with a ``viewer`` attribute, docked on its own, not a step of the
    panel) as an owner of layers in its viewer: the panel's project then records its layers as its own and
    gives it back the layers a project records as its (:func:`docked_owners`)."""
    _DOCKED.add(widget)


def docked_owners(viewer) -> list:
    """The widgets :func:`dock_owner` recorded whose viewer is ``viewer`` (napari's proxy of it or not)."""
    return [w for w in list(_DOCKED) if _inner(getattr(w, "viewer", None)) is _inner(viewer)]


class StepContract(LayerOwner):
    """Mixin of the panel's step widgets (see the module docstring)."""

    #: ``(slot, attribute, kinds, hint)``: what each input takes and what to do when nothing fits
    INPUTS: tuple = ()
    #: ``{parameter name: attribute}`` of the parameters the data may set
    PARAMS: dict = {}
    #: name patterns of the layers the step makes, each ``"pattern"`` or ``("pattern", kind, ...)`` (napari class
    #: names of the layers made under that name)
    OUTPUTS: tuple = ()
    #: what the method needs in the data (checked before a run, see :mod:`._fit_checks`)
    NEEDS: tuple = ()

    #: emitted by the step with what it made (a layer, a path, a model, ...)
    made = Signal(object)

    # --- inputs ------------------------------------------------------------------------------
    def inputs(self) -> dict[str, tuple]:
        """``{slot: kinds}``: napari layer class names or file patterns each input takes."""
        return {slot: tuple(kinds) for slot, _, kinds, _ in self.INPUTS}

    def _slot_widget(self, attr):
        return getattr(self, attr, None)

    def accepts(self, layer_or_path) -> bool:
        """Whether some input of the step takes ``layer_or_path`` (the widget's own filters included:
        a combo box lists only the layers the step can use)."""
        return self._slot_for(layer_or_path) is not None

    def _slot_for(self, item, slot_name=None):
        for slot, attr, kinds, _ in self.INPUTS:
            w = self._slot_widget(attr)
            if w is None or (slot_name is not None and slot != slot_name):
                continue
            if isinstance(item, (str, Path)):
                name = Path(item).name
                if any("*" in k and fnmatch.fnmatch(name.lower(), k.lower()) for k in kinds):
                    return slot, w
                continue
            layer = _inner(item)
            if type(layer).__name__ not in kinds:
                continue
            if hasattr(w, "findText"):  # a QComboBox of layer names
                if w.findText(layer.name) >= 0:
                    return slot, w
            elif hasattr(w, "choices"):  # noqa: SIM102
                if any(_inner(c) is layer for c in w.choices):
                    return slot, w
        return None

    def set_input(self, layer_or_path, *, slot: str | None = None) -> bool:
        """Make ``layer_or_path`` the input of the slot that takes it (or of ``slot``); ``False`` when none does."""
        found = self._slot_for(layer_or_path, slot)
        if found is None:
            return False
        _, w = found
        if isinstance(layer_or_path, (str, Path)):
            w.value = layer_or_path
            if hasattr(self, "_after_path_input"):
                self._after_path_input(found[0])
        elif hasattr(w, "findText"):
            w.setCurrentIndex(w.findText(_inner(layer_or_path).name))
        else:
            layer = _inner(layer_or_path)
            w.value = next(c for c in w.choices if _inner(c) is layer)
        return True

    def take_result(self, maker, layer) -> bool:
        """Read ``layer`` where this step read the layer ``maker`` wrote it beside.

        A step shows its result in the layer it made (:func:`._layers.show_layer`), never in a layer of the
        output's name it did not make (a project's or the user's ``tracks``): its result is then ``tracks [1]``.
        An input of this step that reads such a same-named layer (of ``layer``'s kind, not ``maker``'s) reads
        ``layer`` from now on, as it did when steps wrote into the layer of their output's name; any other
        input (another layer the user chose) is kept.

        Parameters
        ----------
        maker : LayerOwner
            The widget that showed ``layer`` (this step itself for its own inputs, e.g. Detect then Track).
        layer : napari.layers.Layer
            The layer it showed.

        Returns
        -------
        bool
            Whether an input now reads ``layer``.
        """
        viewer = getattr(self, "_viewer", None) or getattr(self, "viewer", None)
        new, taken = _inner(layer), False
        for slot, cur in self.current_inputs().items():
            if isinstance(cur, str):  # a combo box of layer names (or a path)
                cur = viewer.layers[cur] if viewer is not None and cur in viewer.layers else None
            cur = _inner(cur) if cur is not None else None
            if (isinstance(cur, type(new)) and cur is not new and maker.made_as(new, cur.name)
                    and not maker.made_as(cur, cur.name)):
                taken |= self.set_input(layer, slot=slot)
        return taken

    def current_inputs(self) -> dict:
        """``{slot: current layer, path or None}``."""
        out = {}
        for slot, attr, _, _ in self.INPUTS:
            w = self._slot_widget(attr)
            if w is None:
                out[slot] = None
            elif hasattr(w, "findText"):
                out[slot] = w.currentText() or None
            else:
                v = w.value
                out[slot] = None if v is None or str(v) in ("", ".") else v
        return out

    def missing_inputs(self) -> list[str]:
        """What to do for each layer input with nothing to choose (empty: every layer input has a choice)."""
        out = []
        for slot, attr, kinds, hint in self.INPUTS:
            w = self._slot_widget(attr)
            if w is None or all("*" in k for k in kinds):
                continue
            empty = w.count() == 0 if hasattr(w, "count") and hasattr(w, "findText") else not list(w.choices)
            if empty:
                out.append(hint or f"no {' or '.join(kinds)} layer for '{slot}'")
        return out

    def makes(self, layer) -> bool:
        """Whether ``layer`` is one of the layers this step makes: one it made (:meth:`remember`; whatever its name,
        e.g. ``"tracks [1]"`` when a layer of another kind was called ``tracks``), else by its name (``OUTPUTS``)
        when it is of a kind the pattern names (an object with only a ``name``, not a layer: by its name)."""
        import napari.layers

        inner = _inner(layer)
        made = getattr(self, "_made_layers", None)
        if made is not None and inner in made:
            return True
        kind = type(inner).__name__ if isinstance(inner, napari.layers.Layer) else None
        for entry in self.OUTPUTS:
            pattern, kinds = (entry, ()) if isinstance(entry, str) else (entry[0], tuple(entry[1:]))
            if fnmatch.fnmatchcase(inner.name, pattern) and (not kinds or kind is None or kind in kinds):
                return True
        return False

    # --- parameters --------------------------------------------------------------------------
    def _param_widgets(self) -> dict:
        out = {}
        for name, attr in self.PARAMS.items():
            w = getattr(self, attr, None)
            if w is None:
                raise AttributeError(f"{type(self).__name__}: parameter {name!r} has no widget {attr!r}")
            out[name] = w
        return out

    def _follow_edits(self) -> None:
        """Record the parameters the user changes by hand (those are never overwritten by defaults)."""
        if getattr(self, "_edit_watch", None) is not None:
            return
        self._edit_watch = set()
        self._user_set: set = set()
        self._applying = False
        for name, w in self._param_widgets().items():
            sig = _changed(w)
            if sig is None:
                continue

            def mark(*_, _name=name):
                if not self._applying:
                    self._user_set.add(_name)

            sig.connect(mark)
            self._edit_watch.add(name)

    def defaults(self) -> dict:
        """``{parameter: current value}`` of the parameters the data may set."""
        return {name: _value(w) for name, w in self._param_widgets().items()}

    def user_set(self) -> set:
        """The parameters changed by hand (kept by :meth:`apply_defaults`)."""
        self._follow_edits()
        return set(self._user_set)

    def set_quietly(self, name: str, value) -> None:
        """Set a parameter as the step itself (e.g. to show what a run used), not as a user edit."""
        self._follow_edits()
        self._applying = True
        try:
            _set_value(self._param_widgets()[name], value)
        finally:
            self._applying = False

    def apply_defaults(self, values: dict, *, force: bool = False) -> list[str]:
        """Set parameters from ``values``; returns the names set.

        Raises ``KeyError`` for a name the step does not have. Parameters the user changed by hand are
        kept unless ``force``.
        """
        widgets = self._param_widgets()
        unknown = sorted(set(values) - set(widgets))
        if unknown:
            raise KeyError(f"{type(self).__name__} has no parameter {', '.join(map(repr, unknown))} "
                           f"(it has {', '.join(sorted(widgets)) or 'none'})")
        self._follow_edits()
        done = []
        self._applying = True
        try:
            for name, value in values.items():
                if value is None or (name in self._user_set and not force):
                    continue
                _set_value(widgets[name], value)
                done.append(name)
        finally:
            self._applying = False
        if force:
            self._user_set -= set(values)
        return done
