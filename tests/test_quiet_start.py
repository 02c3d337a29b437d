"""The chip check behind octojax's quiet CPU start (octojax/quiet_start.py), on fake sysfs trees."""

from octojax.quiet_start import GOOGLE_PCI_VENDOR, NVIDIA_PCI_VENDOR, pci_vendors


def _sysfs(tmp_path, vendors):
    for i, vendor in enumerate(vendors):
        (tmp_path / f"0000:00:0{i}.0").mkdir()
        (tmp_path / f"0000:00:0{i}.0" / "vendor").write_text(vendor + "\n")
    return tmp_path


def test_pci_vendors_reads_each_device(tmp_path):
    root = _sysfs(tmp_path, ["0x8086", GOOGLE_PCI_VENDOR.upper().replace("X", "x")])
    assert pci_vendors(root) == {"0x8086", GOOGLE_PCI_VENDOR}


def test_no_sysfs_means_unsure(tmp_path):
    assert pci_vendors(tmp_path / "absent") is None
    assert NVIDIA_PCI_VENDOR not in pci_vendors(_sysfs(tmp_path, ["0x1af4"]))
