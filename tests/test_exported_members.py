import liferaft


def test_public_api_is_pinned() -> None:
    assert sorted(liferaft.__all__) == [
        "BackupResult",
        "LiferaftError",
        "RestoreResult",
        "VerifyResult",
        "__version__",
        "backup",
        "init_repository",
        "list_snapshots",
        "open_repository",
        "restore",
        "show",
        "verify",
    ]
    for name in liferaft.__all__:
        assert hasattr(liferaft, name)
