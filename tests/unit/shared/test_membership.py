"""How a process's consumers present themselves to their group."""

from __future__ import annotations

from shared.kafka.membership import GroupMembership


def test_static_members_of_one_process_present_distinct_ids() -> None:
    membership = GroupMembership(instance_id="pod-a")
    ids = [
        membership.for_member(i).consumer_options("points")["group_instance_id"] for i in (0, 1, 2)
    ]
    # The first keeps the id as set: a restarted one-member instance keeps its partitions.
    assert ids == ["points:pod-a", "points:pod-a/member-1", "points:pod-a/member-2"]


def test_dynamic_members_stay_dynamic() -> None:
    assert "group_instance_id" not in GroupMembership().for_member(1).consumer_options("points")
