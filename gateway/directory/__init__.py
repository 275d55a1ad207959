"""Who we serve: companies, their participant ids and receiving profiles, the SMP data published for
them and their registration in the SML."""
