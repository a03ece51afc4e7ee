"""The one dispatch rule that merges and codecs share: by class or name, along the MRO, ABCs ranked as
functools.singledispatch ranks them, one registration per type, a cache that ABC registration clears."""

from __future__ import annotations

import collections
import pickle
from collections.abc import Mapping, MutableMapping, Sequence, Set

import pytest

from stagekit._typedispatch import TypeDispatch, type_label, type_name
from stagekit.errors import RegistrationError


class Animal:
    pass


class Dog(Animal):
    pass


class Puppy(Dog):
    pass


def test_resolution_follows_the_mro_most_specific_first() -> None:
    table: TypeDispatch[str] = TypeDispatch("codec")
    table.add(object, "object", "o")
    table.add(Animal, "animal", "a")
    table.add(Dog, "dog", "d")
    assert [table.lookup(t) for t in (Puppy, Dog, Animal, int)] == ["dog", "dog", "animal", "object"]
    assert TypeDispatch[str]("codec").lookup(int) is None


def test_a_type_by_name_matches_its_class_without_importing_it() -> None:
    table: TypeDispatch[str] = TypeDispatch("codec")
    table.add(type_name(Dog), "dog by name", "d")
    table.add("nowhere.Imported", "never seen", "n")
    assert table.lookup(Puppy) == "dog by name"
    assert table.lookup(Animal) is None
    assert type_name(Dog) == f"{__name__}.Dog" and type_label(Dog) == type_label(type_name(Dog))


def test_one_claim_per_type_a_class_and_its_name_being_one_claim() -> None:
    table: TypeDispatch[str] = TypeDispatch("codec")
    table.add(Dog, "a", "plugin 'kennel'")
    for again in (Dog, type_name(Dog)):
        with pytest.raises(RegistrationError) as info:
            table.add(again, "b", "plugin 'pound'")
        assert str(info.value) == (f"two codecs claim {type_name(Dog)}: one registered by plugin 'kennel', the other "
                                   "by plugin 'pound'; exactly one codec per type is allowed")
    by_name: TypeDispatch[str] = TypeDispatch("merge")
    by_name.add("pandas.DataFrame", "x", "one")
    with pytest.raises(RegistrationError, match=r"two merges claim pandas.DataFrame.*one.*two"):
        by_name.add("pandas.DataFrame", "y", "two")
    assert table.items() == ["a"] and len(table) == 1 and list(table) == ["a"]


def test_claimant_names_who_holds_a_type() -> None:
    table: TypeDispatch[str] = TypeDispatch("codec")
    table.add(type_name(Dog), "dog", "plugin 'kennel'")
    claim = table.claimant(Dog)
    assert claim is not None and (claim.item, claim.origin, claim.label) == ("dog", "plugin 'kennel'", type_name(Dog))
    assert table.claimant(Animal) is None


@pytest.mark.parametrize("bad", ["DataFrame", ".x", "a..b", "pandas."])
def test_a_name_must_be_module_dot_qualname(bad: str) -> None:
    with pytest.raises(RegistrationError, match=r"plugin 'p' registered a codec for .*'module.QualName'"):
        TypeDispatch[str]("codec").add(bad, "x", "plugin 'p'")


def test_something_that_is_not_a_type_is_refused_naming_the_origin() -> None:
    with pytest.raises(RegistrationError, match=r"plugin 'p' registered a codec for 42, which is neither a class"):
        TypeDispatch[str]("codec").add(42, "x", "plugin 'p'")  # type: ignore[arg-type]


def test_abcs_rank_after_the_most_basic_class_implementing_them() -> None:
    table: TypeDispatch[str] = TypeDispatch("codec")
    table.add(object, "object", "o")
    table.add(Mapping, "mapping", "m")
    table.add(MutableMapping, "mutable", "mm")
    assert table.lookup(dict) == "mutable"
    assert table.lookup(collections.OrderedDict) == "mutable"
    assert table.lookup(type({}.items())) == "object"  # a Set view, no Set registered
    table.add(Set, "set", "s")
    assert table.lookup(type({}.items())) == "set"
    table.add(dict, "dict", "d")
    assert table.lookup(collections.OrderedDict) == "dict"


def test_the_cache_is_cleared_by_a_registration_and_by_abc_registration() -> None:
    class Bag:
        pass

    table: TypeDispatch[str] = TypeDispatch("codec")
    table.add(object, "object", "o")
    table.add(Sequence, "sequence", "s")
    assert table.lookup(Bag) == "object"
    Sequence.register(Bag)
    assert table.lookup(Bag) == "sequence"
    table.add(Bag, "bag", "b")
    assert table.lookup(Bag) == "bag"


def test_two_unrelated_abcs_at_one_rank_are_ambiguous_naming_both_origins() -> None:
    class Plain:
        pass

    Mapping.register(Plain)
    Sequence.register(Plain)
    table: TypeDispatch[str] = TypeDispatch("codec")
    table.add(Mapping, "m", "plugin 'maps'")
    table.add(Sequence, "s", "plugin 'seqs'")
    with pytest.raises(RegistrationError) as info:
        table.lookup(Plain)
    assert str(info.value) == (
        f"ambiguous codec for {type_name(Plain)}: it is a collections.abc.Mapping (codec registered by plugin "
        "'maps') and a collections.abc.Sequence (codec registered by plugin 'seqs'); register a codec for "
        f"{type_name(Plain)} itself")


def test_it_pickles_its_registrations_not_its_cache() -> None:
    table: TypeDispatch[str] = TypeDispatch("codec")
    table.add(Animal, "animal", "a")
    table.add("builtins.int", "int", "i")
    assert table.lookup(Dog) == "animal"
    clone = pickle.loads(pickle.dumps(table))
    assert clone.what == "codec" and clone.items() == ["animal", "int"]
    assert clone._cache == {}
    assert clone.lookup(Puppy) == "animal" and clone.lookup(bool) == "int"
    with pytest.raises(RegistrationError, match="two codecs claim"):
        clone.add(Animal, "again", "x")


def test_the_merge_table_is_built_on_it() -> None:
    from stagekit import MergeTable

    table = MergeTable()
    assert isinstance(table._types, TypeDispatch) and table._types.what == "merge"
