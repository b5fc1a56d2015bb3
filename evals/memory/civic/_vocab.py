"""Names and phrases of Brackenford, the fictional city whose council the second corpus describes.

No name here is shared with Kestrel Labs' vocabulary (a test checks it), so a mixed corpus has
no accidental answers across the two. Every list is ordered: the output
must not depend on hash order.
"""

from __future__ import annotations

__all__ = [
    "COMMITTEES",
    "CONTRACTORS",
    "DEPARTMENTS",
    "DEPOTS",
    "DISTRICTS",
    "FACILITY_KINDS",
    "FACILITY_NAMES",
    "FIRST_NAMES",
    "LAST_NAMES",
    "MONTHS",
    "PARKS",
    "STREETS",
    "VENUES",
    "WEEKDAYS",
]

FIRST_NAMES = [
    "Agnieszka", "Bronwen", "Cormac", "Delphine", "Eamon", "Fenella", "Gideon", "Halima", "Ignatius", "Jolene",
    "Kasimir", "Lorna", "Malachy", "Niamh", "Ottilie", "Perpetua", "Quentin", "Rosalind", "Seamus", "Tamsin",
    "Ulrich", "Vesna", "Wilfred", "Ximena", "Yusuf", "Zelda", "Ambrose", "Beatrix", "Crispin", "Dervla",
    "Edwina", "Florian", "Gwendolyn", "Horatio", "Isolde", "Jethro", "Kerensa", "Leopold", "Morwenna",
    "Nathaniel", "Odile", "Peregrine", "Rhiannon", "Barnaby", "Thaddeus", "Una", "Valentin", "Winifred",
    "Aurelia", "Bartholomew", "Clemency", "Digby", "Esmeralda", "Fergal", "Georgiana", "Hamish", "Imogen",
    "Jocasta", "Lachlan", "Marguerite", "Norbert", "Oonagh", "Phineas", "Roisin", "Saoirse", "Tobias",
    "Ursula", "Vaughan", "Wystan", "Yolanda", "Zebedee", "Cressida",
]

LAST_NAMES = [
    "Abernethy", "Blackwood", "Cartwright", "Drummond", "Ellingham", "Fairbairn", "Gallagher", "Hargreaves",
    "Inglis", "Jarvis", "Kilbride", "Lockhart", "Mortimer", "Nettleton", "Ormerod", "Pemberton", "Quayle",
    "Rowntree", "Sutcliffe", "Thistlewood", "Umfreville", "Vance", "Whitlock", "Yardley", "Ackroyd",
    "Brennan", "Cheverton", "Dunmore", "Eastwood", "Fothergill", "Greenhalgh", "Holroyd", "Illingworth",
    "Jessop", "Lumsden", "Marchbank", "Naylor", "Oddie", "Pickersgill", "Ramsbottom", "Stainforth", "Tetley",
    "Wadsworth", "Tregarthen", "Polwhele", "Scarisbrick", "Applegarth", "Birtwistle", "Crabtree", "Dewhurst",
    "Entwistle", "Fazakerley", "Gledhill", "Haworth", "Ibbotson", "Kershaw", "Leadbetter", "Metcalfe",
    "Nuttall", "Openshaw", "Postlethwaite", "Rigby", "Shufflebottom", "Tattersall", "Uttley", "Waddington",
    "Earnshaw", "Barraclough",
]

#: District → the two-letter code on its street furniture (streetlight columns are "SM/0231").
DISTRICTS = {
    "Saltmarsh": "SM", "Harrowfield": "HF", "Ottery Cross": "OC", "Brindley": "BY", "Nethercote": "NC",
    "Fellgate": "FG", "Wickham Lees": "WL", "Stonebridge": "SB", "Marram": "MR", "Cinderhill": "CH",
    "Larkspur Vale": "LV", "Pennock": "PK", "Quarry Bank": "QB", "Dunholm": "DH", "Sallowmere": "SW",
    "Tolleshunt": "TS", "Amberley Heath": "AH", "Gorsemoor": "GM",
}

#: Proper names for council buildings; a facility is a name plus a kind ("Hollyhock Library").
FACILITY_NAMES = [
    "Hollyhock", "Marlowe Street", "Brackenridge", "Tanner's Yard", "Foxglove", "Abbeyfield", "Cobbler's Row",
    "Elmstead", "Greyfriars", "Juniper Court", "Kingsmead", "Lowther", "Mayfield", "Northgate", "Pippin Lane",
    "Rosewell", "St Anselm's", "Thornbury", "Union Mills", "Westbourne", "Yew Tree", "Bellhanger", "Coppergate",
    "Dovecote", "Fairweather", "Gatehouse", "Ironbridge", "Lamplighter", "Oakapple", "Pumphouse",
]

#: Kind → the directorate that usually runs it (the world sometimes picks another, as councils do).
FACILITY_KINDS = {
    "Library": "Culture and Leisure",
    "Leisure Centre": "Culture and Leisure",
    "Museum": "Culture and Leisure",
    "Community Hub": "Housing and Communities",
    "Recycling Centre": "Environment and Climate",
    "Children's Centre": "Children and Families",
    "Day Centre": "Adult Social Care",
    "Sports Ground": "Culture and Leisure",
}

DEPARTMENTS = [
    "Culture and Leisure", "Housing and Communities", "Environment and Climate", "Children and Families",
    "Adult Social Care", "Transport and Highways", "Planning and Regeneration", "Resources",
]

COMMITTEES = [
    "the Communities Scrutiny Committee", "the Place Overview Panel", "the Resources Committee",
    "the People Select Committee", "the Economy Board", "the Cabinet Member Forum",
]

DEPOTS = [
    "the Millbrook depot", "the Canal Street garage", "the Hawksmoor yard", "the Tannery Lane depot",
    "the Ridgeway garage", "the Old Gasworks yard", "the Fairfax Road depot", "the Sandpiper garage",
]

PARKS = [
    "Fenwick Park", "Larchmont Gardens", "Ravensworth Recreation Ground", "Pelham Fields", "Coldharbour Common",
    "Sparrowhawk Meadows", "Bellingham Park", "Quaker's Green", "Heronsgate Park", "Windle Woods",
    "Moorcroft Gardens", "Kingfisher Lake Park", "Tidewell Green", "Ashcombe Park",
]

#: Grounds contractors: the account manager of each is the council's contact.
CONTRACTORS = [
    "Halden & Pryce", "Orrin Groundcare", "Tillbrook Services", "Greenway Partnership", "Mossley and Daughters",
    "Verdant Estates", "Copsewood Contracting", "Bluebell Landscapes",
]

STREETS = [
    "Cannon Street", "Tithe Barn Road", "Gallowtree Lane", "Wharf Road", "Beacon Hill", "Ropewalk",
    "Chandlers Way", "Mill Race Lane", "Sheepfold Lane", "Coronation Avenue", "Lantern Row", "Quayside",
    "Bishopsgate", "Threadneedle Walk", "Saddlers Close", "Cooper's Drift", "Paradise Street", "Vicarage Hill",
    "Old Forge Road", "Drovers Lane", "Silverdale Road", "Hatters Lane",
]

#: Where a food bank, a club or a clinic can be held (the subjects of moves).
VENUES = [
    "St Anne's church hall", "the Scout hut on Wharf Road", "the old magistrates' court", "the Methodist chapel",
    "the former bank on Bishopsgate", "Unit 4 of the Tannery estate", "the Quaker meeting house",
    "the back room of the Red Lion", "the sixth-form block at Drovers Lane", "the Salvation Army citadel",
]

WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]
